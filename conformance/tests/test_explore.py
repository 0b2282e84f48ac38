"""explore_manager() and ManagerMachine: the reference manager survives the exploration; broken managers (and
kani's) are caught, on their requirement, with hypothesis's shrunk steps as a paste-able script that replays
the failure; failures go to hypothesis's database; a subclass adds rules and invariants of its own."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import invariant, rule, run_state_machine_as_test
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.conformance import ManagerMachine
from lmstream.conformance.explore import ExplorationFailure, explore_manager
from lmstream.reference import StreamManager, build_completion
from lmstream.spec import Message, StreamConsumedError, StreamIncompleteError, StreamState, is_completion

SEED = 20240601
"""Every exploration here is seeded, so that a run is reproducible and its time predictable."""

QUICK: list[Phase] = [phase for phase in Phase if phase is not Phase.explain]
"""What explore_manager() runs: hypothesis's phases without the slow explain phase."""


# ------------------------------------------------------------------------------------------------ broken
class KaniLike:
    """kani's manager without its two quirks that fail first (stripping, accepting kani's completions only):
    after an early break or an engine error, ``_finished`` is never set and every waiter waits forever."""

    def __init__(
        self,
        stream_iter: AsyncIterable[Any],
        role: object,
        *,
        after: Callable[[Any], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self.role = role
        self._stream = stream_iter
        self._after = after
        self._lock: contextlib.AbstractAsyncContextManager[object] = lock or contextlib.nullcontext()
        self._completion: Any = None
        self._claimed = False
        self._finished = asyncio.Event()

    async def _run(self) -> AsyncIterator[str]:
        async with self._lock:
            tokens: list[str] = []
            async for item in self._stream:
                if isinstance(item, str):
                    yield item
                    tokens.append(item)
                elif self._completion is None and is_completion(item):
                    self._completion = item
                else:
                    raise TypeError(f"unexpected item {item!r}")
            if self._completion is None:
                self._completion = build_completion(self.role, "".join(tokens))
            if self._after is not None:
                await self._after(self._completion)
            self._finished.set()

    def __aiter__(self) -> AsyncIterator[str]:
        if self._claimed:
            raise StreamConsumedError()
        self._claimed = True
        return self._run()

    async def completion(self) -> Any:
        if not self._claimed:
            async for _ in self:
                pass
        await self._finished.wait()
        return self._completion

    async def message(self) -> Message:
        completion = await self.completion()
        message: Message = completion.message
        return message

    def __await__(self) -> Generator[Any, Any, Message]:
        return self.message().__await__()


class _Wrapper:
    """The reference manager behind a thin wrapper that a subclass breaks in one place."""

    def __init__(
        self,
        stream_iter: AsyncIterable[Any],
        role: object,
        *,
        after: Callable[[Any], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self.inner = StreamManager(stream_iter, role, after=after, lock=lock)

    @property
    def role(self) -> object:
        return self.inner.role

    @property
    def state(self) -> StreamState:
        return self.inner.state

    def __aiter__(self) -> AsyncIterator[str]:
        return self.inner.__aiter__()

    async def completion(self) -> Any:
        return await self.inner.completion()

    async def message(self) -> Message:
        message: Message = (await self.completion()).message
        return message

    def __await__(self) -> Generator[Any, Any, Message]:
        return self.message().__await__()

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Recording:
    """An iterator that records what passes through it (no async generator: nothing to finalize)."""

    def __init__(self, iterator: AsyncIterator[str], tokens: list[str]) -> None:
        self.iterator = iterator
        self.tokens = tokens

    def __aiter__(self) -> _Recording:
        return self

    async def __anext__(self) -> str:
        token = await self.iterator.__anext__()
        self.tokens.append(token)
        return token

    async def aclose(self) -> None:
        await self.iterator.aclose()  # type: ignore[attr-defined]  # the reference's iterator has aclose()


class DropsLastToken(_Wrapper):
    """Its StreamIncompleteError leaves out the last token the consumer received (SM-28)."""

    tokens: list[str]

    def __aiter__(self) -> AsyncIterator[str]:
        self.tokens = []
        return _Recording(self.inner.__aiter__(), self.tokens)

    async def completion(self) -> Any:
        try:
            return await self.inner.completion()
        except StreamIncompleteError as exc:
            kept = getattr(self, "tokens", [])[:-1]
            raise StreamIncompleteError("".join(kept), exc.reason) from None


class StopAfterATimer(_Wrapper):
    """Its aclose() waits on a timer of its own first: the explorer must wait for it, not call it a hang."""

    async def aclose(self) -> None:
        await asyncio.sleep(0.01)
        await self.inner.aclose()


class StopWaitsForTheEnd(_Wrapper):
    """Its aclose() waits for the stream to end by itself before stopping it: with a blocked engine, or a
    consumer that does not read on, it never returns (SM-22, SM-24)."""

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.inner.completion()
        await self.inner.aclose()


_RULES = re.compile(r"^state\.(step|leave|cancel|wait|stop|release|settle)\(", re.MULTILINE)


def _caught(factory: object, max_examples: int = 300) -> ExplorationFailure:
    with pytest.raises(ExplorationFailure) as info:
        explore_manager(factory, max_examples=max_examples, seed=SEED)
    return info.value


class KaniLikeMachine(ManagerMachine):
    factory = KaniLike


class ReferenceMachine(ManagerMachine):
    factory = StreamManager


# ------------------------------------------------------------------------------------------------ tests
def test_the_reference_manager_survives_the_exploration() -> None:
    explored = explore_manager(StreamManager, max_examples=150, seed=SEED)
    assert explored.factory == "lmstream.reference.manager:StreamManager"
    assert explored.examples >= 150


@pytest.mark.parametrize(
    ("factory", "broken"),
    [(KaniLike, {"SM-8", "SM-10", "SM-11"}), (DropsLastToken, {"SM-28"}), (StopWaitsForTheEnd, {"SM-22"})],
    ids=["hangs-after-an-early-stop", "drops-the-last-token", "stop-waits-for-the-end"],
)
def test_a_broken_manager_is_caught_with_a_minimal_script(factory: type, broken: set[str]) -> None:
    failure = _caught(factory)
    assert failure.requirement_id in broken, str(failure)
    text = str(failure)
    assert text.startswith(f"{failure.requirement_id}: {failure.observed}\n")
    assert f"from conformance.tests.test_explore import {factory.__name__}" in text
    assert "from lmstream.conformance.stateful import ManagerMachine" in failure.reproduction
    assert f"    factory = {factory.__name__}" in failure.reproduction
    assert "state.begin(tokens=" in failure.reproduction and "what happened:" in text
    assert failure.reproduction.endswith("state.teardown()")
    steps = _RULES.findall(failure.reproduction)  # hypothesis's printed rules, invariants left out
    assert 1 <= len(steps) <= 4, text  # shrunk: a handful of steps, not the dozen an example may have
    assert len(failure.trace) >= len(steps)


def test_the_minimal_script_replays_the_failure_as_pasted() -> None:
    failure = _caught(DropsLastToken)
    root = Path(__file__).resolve().parents[2]  # where `conformance.tests.test_explore` is importable from
    ran = subprocess.run(
        [sys.executable, "-"],
        input=failure.reproduction,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
    )
    assert ran.returncode == 1
    assert f"ExplorationFailure: {failure.requirement_id}: {failure.observed}" in ran.stderr


def test_an_early_break_that_strands_waiters_is_reported_as_a_hang_when_nothing_is_left_to_run() -> None:
    class Patient(KaniLikeMachine):
        timeout = 600.0  # far beyond the test's own timeout: the hang is seen at once, not at the backstop

    state = Patient()
    state.begin(tokens=[" a", "b"])
    state.step(turns=2)
    state.wait(method="completion", turns=0)
    state.leave(how="break", turns=2)
    state.keeps_the_contract()
    with pytest.raises(ExplorationFailure) as info:
        state.teardown()
    failure = info.value
    assert failure.requirement_id == "SM-10"
    assert failure.observed == (
        "the consumer broke out, but completion(), the final completion() still waited with nothing left "
        "to run"
    )
    assert failure.trace[0].startswith("1. step(turns=2): consumer saw str ' a'")
    assert state.loop.is_closed()


def test_kanis_manager_is_caught_in_bounded_time() -> None:
    failure = _caught(KaniStreamManager, max_examples=100)
    assert failure.requirement_id.startswith("SM-"), str(failure)
    assert "from kani.streaming import StreamManager" in failure.reproduction


def test_a_stop_while_the_engine_is_blocked_passes_on_the_reference() -> None:
    state = ReferenceMachine()
    state.begin(tokens=[" a", "b"], fault="raise", fault_at=2, block_at=1, lock=True, after="record")
    assert state.probe.yielded == []
    state.step(turns=2)
    state.wait(method="completion", turns=0)
    state.wait(method="message", turns=0)
    state.step(turns=2)
    state.stop(turns=2)
    state.settle()
    state.keeps_the_contract()
    state.teardown()
    trace = state.trace
    assert trace[0] == "1. step(turns=2): consumer saw str ' a'; state streaming; engine open, 1 item(s) read"
    assert trace[3].endswith("2 waiter(s), 2 pending; engine blocked after 1 item(s)")
    assert trace[4] == (
        "5. stop(turns=2): consumer saw str ' a' and its loop ended normally; state stopped; 2 waiter(s), "
        "0 pending; engine closed after 1 item(s)"
    )
    assert trace[-1].startswith("end: the engine released, the story finished")
    assert state.loop.is_closed()


def test_a_timer_of_the_managers_own_is_waited_for_not_taken_for_a_hang() -> None:
    class Machine(ManagerMachine):
        factory = StopAfterATimer

    state = Machine()
    state.begin(tokens=[" a", "b"], block_at=1)
    state.step(turns=2)
    state.wait(method="completion", turns=0)
    state.stop(turns=0)
    state.teardown()  # aclose() returns after its timer; the waiter gets the incomplete text
    assert state.trace[-1].startswith("end: the engine released, the story finished")


def test_a_subclass_adds_rules_and_invariants_and_reports_on_its_own_ids() -> None:
    states: list[StreamState] = []

    @seed(SEED)
    class NoTokenYet(ReferenceMachine):
        """An application's own rule and invariant: it reads the state; no token may arrive (a test
        of the test: the reference manager does hand out tokens)."""

        @rule()
        def read_the_state(self) -> None:
            states.append(self.manager.state)

        @invariant()
        def no_token_yet(self) -> None:
            if self.tokens:
                self.fail("APP-1", f"the consumer received {len(self.tokens)} token(s)")

    with pytest.raises(ExplorationFailure) as info:
        run_state_machine_as_test(
            NoTokenYet,
            settings=settings(max_examples=300, stateful_step_count=12, database=None, phases=QUICK),
        )
    failure = info.value
    assert failure.requirement_id == "APP-1"
    assert failure.observed == "the consumer received 1 token(s)"
    assert any(line.startswith("state.step(") for line in getattr(failure, "__notes__", []))
    assert states and all(isinstance(state, StreamState) for state in states)  # the rule ran, on the manager


def test_a_failure_is_saved_in_the_database_and_replayed_first(tmp_path: Path) -> None:
    runs: list[int] = []

    class Counted(KaniLikeMachine):
        def __init__(self) -> None:
            super().__init__()
            runs.append(1)

    database = DirectoryBasedExampleDatabase(tmp_path)  # the kind hypothesis uses by default
    configured = settings(max_examples=300, database=database, report_multiple_bugs=False, phases=QUICK)
    with pytest.raises(ExplorationFailure) as first:
        run_state_machine_as_test(Counted, settings=configured)
    assert any(path.is_file() for path in tmp_path.rglob("*")), "the failing example was not saved"
    runs.clear()
    with pytest.raises(ExplorationFailure) as again:
        run_state_machine_as_test(Counted, settings=configured)
    assert again.value.requirement_id == first.value.requirement_id
    assert again.value.observed == first.value.observed
    assert len(runs) <= 3, "the saved example was not replayed first"  # the replay, and its final rerun


def test_a_machine_without_a_factory_or_inside_a_running_loop_is_refused() -> None:
    state = ManagerMachine()
    with pytest.raises(TypeError, match=r"^ManagerMachine.factory is not set: expected a ManagerFactory"):
        state.begin(tokens=["a"])
    state.teardown()
    unbegun = ReferenceMachine()
    with pytest.raises(RuntimeError, match=r"begin\(\) runs first"):
        unbegun.manager  # noqa: B018 - the property is what refuses
    unbegun.teardown()

    async def inside_a_loop() -> None:
        explore_manager(StreamManager, max_examples=1)

    with pytest.raises(RuntimeError, match="call them from synchronous code"):
        asyncio.run(inside_a_loop())

    async def a_machine_inside_a_loop() -> None:
        ReferenceMachine()

    with pytest.raises(RuntimeError, match="call them from synchronous code"):
        asyncio.run(a_machine_inside_a_loop())


def test_without_hypothesis_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(RuntimeError, match=r"needs hypothesis, which is not installed: pip install "):
        explore_manager(StreamManager, max_examples=1)
