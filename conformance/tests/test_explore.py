"""explore_manager(): the reference manager survives the exploration; broken managers (and kani's) are caught,
with a shrunk, paste-able script that replays the failure."""

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
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.conformance import Block, Fail
from lmstream.conformance.explore import (
    ACTIONS,
    EngineError,
    ExplorationFailure,
    explore_manager,
    replay_manager,
)
from lmstream.reference import StreamManager, build_completion
from lmstream.spec import Message, StreamConsumedError, StreamIncompleteError, StreamState, is_completion

SEED = 20240601
"""Every exploration here is seeded, so that a run is reproducible and its time predictable."""


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


class StopWaitsForTheEnd(_Wrapper):
    """Its aclose() waits for the stream to end by itself before stopping it: with a blocked engine, or a
    consumer that does not read on, it never returns (SM-22, SM-24)."""

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.inner.completion()
        await self.inner.aclose()


_ACTIONS_LINE = re.compile(r"actions=(\[.*?\]),")


def _caught(factory: object, max_examples: int = 300) -> ExplorationFailure:
    with pytest.raises(ExplorationFailure) as info:
        explore_manager(factory, max_examples=max_examples, seed=SEED)
    return info.value


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
    assert "replay_manager(" in text and "what happened:" in text
    found = _ACTIONS_LINE.search(failure.reproduction)
    assert found is not None
    actions: list[str] = eval(found.group(1))  # the list literal the reproduction holds
    assert 1 <= len(actions) <= 4, text  # shrunk: a handful of actions, not the dozen an example may have
    assert all(action.split("+")[0] in ACTIONS for action in actions)
    assert len(failure.trace) >= len(actions)


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


def test_an_early_break_that_strands_waiters_is_reported_as_a_hang() -> None:
    with pytest.raises(ExplorationFailure) as info:
        replay_manager(KaniLike, [" a", "b"], ["step+2", "completion", "break+2"])
    failure = info.value
    assert failure.requirement_id == "SM-10"
    assert failure.observed == (
        "the consumer broke out, but completion(), the final completion() still waited with nothing left "
        "to run"
    )
    assert failure.trace[0].startswith("1. step+2: consumer saw str ' a'")


def test_kanis_manager_is_caught_in_bounded_time() -> None:
    failure = _caught(KaniStreamManager, max_examples=100)
    assert failure.requirement_id.startswith("SM-"), str(failure)
    assert "from kani.streaming import StreamManager" in failure.reproduction


def test_replaying_a_stop_while_the_engine_is_blocked_passes_on_the_reference() -> None:
    trace = replay_manager(
        StreamManager,
        [" a", Block(), "b", Fail(EngineError("never reached"))],
        ["step+2", "completion", "message", "step+2", "stop+2", "settle"],
        lock=True,
        after="record",
    )
    assert trace[0] == "1. step+2: consumer saw str ' a'; state streaming; engine open, 1 item(s) read"
    assert trace[3].endswith("2 waiter(s), 2 pending; engine blocked after 1 item(s)")
    assert trace[4] == (
        "5. stop+2: consumer saw str ' a' and its loop ended normally; state stopped; 2 waiter(s), "
        "0 pending; engine closed after 1 item(s)"
    )
    assert trace[-1].startswith("end: the engine released, the story finished")


def test_bad_actions_and_running_loops_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown action 'jump'; expected one of step, break"):
        replay_manager(StreamManager, ["a"], ["jump"])

    async def inside_a_loop() -> None:
        replay_manager(StreamManager, ["a"], ["step"])

    with pytest.raises(RuntimeError, match="call them from synchronous code"):
        asyncio.run(inside_a_loop())


def test_without_hypothesis_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(RuntimeError, match=r"needs hypothesis, which is not installed: pip install "):
        explore_manager(StreamManager, max_examples=1)
