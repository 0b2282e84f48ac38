"""The reference round stream, ``round_stream``: SM-18 (one manager at a time, skipped ones drained), SM-19
(an error ends the round with that same error), SM-20 (closing the round stops the current manager)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from lmstream.reference import StreamManager, round_stream
from lmstream.spec import (
    Completion,
    Message,
    RoundStreamFactory,
    StreamIncompleteError,
    StreamProtocolError,
    StreamState,
)

from ._harness import (
    BOUND,
    Comp,
    EngineError,
    Faults,
    Msg,
    Probe,
    assert_no_tasks_left,
    other_tasks,
    within_turns,
)

Step = Probe | Msg
FACTORY: RoundStreamFactory[Completion] = round_stream  # the reference satisfies the spec's factory


class Script:
    """A ``next_step`` that hands out ``steps`` in order and records what it was called with and what the
    previous manager looked like at that moment."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.calls: list[Completion | None] = []
        self.managers: list[StreamManager[Completion]] = []
        self.previous_state_at_call: list[StreamState | None] = []
        self.probes = [s for s in steps if isinstance(s, Probe)]

    async def __call__(self, previous: Completion | None) -> AsyncIterable[Any] | Message | None:
        self.calls.append(previous)
        self.previous_state_at_call.append(self.managers[-1].state if self.managers else None)
        if len(self.calls) > len(self.steps):
            return None
        step = self.steps[len(self.calls) - 1]
        return step.stream if isinstance(step, Probe) else step

    def round(self) -> AsyncIterator[StreamManager[Completion]]:
        return self._recording(round_stream(self, "assistant"))

    async def _recording(
        self, managers: AsyncIterator[StreamManager[Completion]]
    ) -> AsyncGenerator[StreamManager[Completion], None]:
        async for manager in managers:
            self.managers.append(manager)
            yield manager


# ---------------------------------------------------------------------------------------------- SM-18
async def test_sm18_managers_one_at_a_time_next_step_gets_each_completion() -> None:
    own = Comp(Msg("assistant", "done"))
    tool = Msg("function", "42")
    script = Script([Probe(["call", " f"]), tool, Probe(["do", "ne", own])])
    before = other_tasks()
    seen: list[tuple[object, list[str], object]] = []
    async with _closing(script.round()) as managers:
        async for manager in managers:
            tokens = [t async for t in manager]
            seen.append((manager.role, tokens, (await manager.completion()).message))
    assert [(r, t) for r, t, _ in seen] == [
        ("assistant", ["call", " f"]),
        ("function", ["42"]),
        ("assistant", ["do", "ne"]),
    ]
    first, second, third = [await m.completion() for m in script.managers]
    assert script.calls == [None, first, second, third]  # each call gets the previous step's completion
    assert first.message.text == "call f" and second.message is tool and third is own
    assert script.previous_state_at_call == [None, *[StreamState.COMPLETED] * 3]  # produced one at a time
    assert all(p.closed() for p in script.probes)
    await assert_no_tasks_left(before)


async def test_sm18_a_skipped_manager_is_drained_before_next_step_is_called_again() -> None:
    skipped = Probe(["s", "kip", "ped"], faults=Faults(cleanup_turns=2))
    script = Script([skipped, Msg("function", "r"), Probe(["last"])])
    roles: list[object] = []
    async for manager in script.round():
        roles.append(manager.role)  # never iterated, never awaited
    assert roles == ["assistant", "function", "assistant"]
    drained = script.calls[1]
    assert drained is not None and drained.message.text == "skipped"
    assert drained is await script.managers[0].completion()
    assert skipped.tokens == ["s", "kip", "ped"] and skipped.closed()
    assert script.previous_state_at_call[1] is StreamState.COMPLETED


@pytest.mark.parametrize("text", ["a result", None, ""], ids=["text", "none", "empty"])
async def test_sm18_sm17_finished_message_steps_stream_as_one_token(text: str | None) -> None:
    message = Msg("function", text)
    script = Script([message])
    async for manager in script.round():
        assert [t async for t in manager] == ([text] if text else [])
        assert (await manager.completion()).message is message and await manager is message
    assert script.calls[1] is not None and script.calls[1].message is message


# ---------------------------------------------------------------------------------------------- SM-19
async def _run_round(
    script: Script, on_manager: Callable[[int, StreamManager[Completion]], Any]
) -> BaseException:
    """Iterate the round, calling ``on_manager`` for each manager; return what the round raised."""
    try:
        async for manager in script.round():
            await on_manager(len(script.managers) - 1, manager)
    except BaseException as exc:  # the test inspects it
        return exc
    raise AssertionError("the round ended without an error")


async def _read(index: int, manager: StreamManager[Completion]) -> None:
    async for _ in manager:
        pass


@pytest.mark.parametrize("kind", ["gen", "cls"])
async def test_sm19_an_engine_error_ends_the_round_with_that_same_error(kind: Any) -> None:
    failing = Probe(["a", "b"], kind=kind, faults=Faults(raise_at=1))
    script = Script([Probe(["ok"]), failing, Probe(["never"])])

    async def consume(index: int, manager: StreamManager[Completion]) -> None:
        with contextlib.suppress(EngineError):  # the consumer handles it; the round must still end with it
            await _read(index, manager)

    raised = await _run_round(script, consume)
    assert raised is failing.faults.error
    assert len(script.calls) == 2 and len(script.managers) == 2  # nothing produced after the failure
    assert all(p.closed() for p in script.probes[:2]) and not script.probes[2].started


async def test_sm19_a_protocol_error_ends_the_round() -> None:
    script = Script([Probe(["a", None]), Probe(["never"])])
    raised = await _run_round(script, lambda i, m: _swallow(m))
    assert isinstance(raised, StreamProtocolError) and raised.requirement_id == "ES-2"
    with pytest.raises(StreamProtocolError) as info:
        await script.managers[0].completion()
    assert info.value is raised and len(script.calls) == 1


async def _swallow(manager: StreamManager[Completion]) -> None:
    try:
        async for _ in manager:
            pass
    except Exception:
        pass


@pytest.mark.parametrize("how", ["break", "stop"])
async def test_sm19_an_incomplete_or_stopped_manager_ends_the_round(how: str) -> None:
    first = Probe(["a", "b", "c"], faults=Faults(cleanup_turns=2))
    script = Script([first, Probe(["never"])])

    async def consume(index: int, manager: StreamManager[Completion]) -> None:
        async for _ in manager:
            if how == "stop":
                await manager.aclose()
            else:
                break

    raised = await _run_round(script, consume)
    assert isinstance(raised, StreamIncompleteError) and raised.text == "a"
    assert raised.reason is (StreamState.STOPPED if how == "stop" else StreamState.INCOMPLETE)
    with pytest.raises(StreamIncompleteError) as info:
        await script.managers[0].completion()
    assert info.value is raised  # that same error
    assert len(script.calls) == 1 and first.closed() and not script.probes[1].started


async def test_sm19_next_step_raising_ends_the_round_with_its_error() -> None:
    error = EngineError("history unavailable")

    async def next_step(previous: Completion | None) -> AsyncIterable[Any] | Message | None:
        if previous is None:
            return Msg("function", "r")
        raise error

    with pytest.raises(EngineError) as info:
        async for _ in round_stream(next_step, "assistant"):
            pass
    assert info.value is error


# ---------------------------------------------------------------------------------------------- SM-20
@pytest.mark.parametrize("how", ["break-in-manager", "break-before-iterating", "aclose", "aclose-mid-token"])
async def test_sm20_leaving_the_round_stops_the_current_manager(how: str) -> None:
    current = Probe(["a", "b", "c"], faults=Faults(cleanup_turns=3))
    script = Script([Probe(["x"]), current, Probe(["never"])])
    before = other_tasks()
    managers = script.round()
    held: list[AsyncIterator[str]] = []  # a manager iterator the consumer still holds while the round closes
    async for manager in managers:
        if len(script.managers) < 2:
            await _read(0, manager)
            continue
        if how == "break-in-manager":
            async for _ in manager:
                break
        elif how in ("aclose", "aclose-mid-token"):
            if how == "aclose-mid-token":
                held.append(aiter(manager))
                assert await anext(held[0]) == "a"
            break
        break
    if how.startswith("aclose"):
        assert isinstance(managers, AsyncGenerator)
        await asyncio.wait_for(managers.aclose(), BOUND)
    else:
        del managers  # abandoned: the loop finalizes it
    stopped = script.managers[1]
    await within_turns(
        lambda: stopped.state.is_terminal and current.closed(), "the left round stopped its manager"
    )
    assert stopped.state is StreamState.INCOMPLETE
    with pytest.raises(StreamIncompleteError):
        await stopped.completion()
    assert len(script.calls) == 2 and not script.probes[2].started
    assert how != "break-before-iterating" or not current.started  # closed unread
    if held:
        assert current.tokens == ["a"] and current.cleanup_done  # closed by the round, not by finalization
        with pytest.raises(StopAsyncIteration):
            await anext(held[0])  # the consumer's next step ends cleanly
    await assert_no_tasks_left(before)


@pytest.mark.parametrize("kind", ["gen", "cls"])
async def test_sm20_sm11_cancelling_the_rounds_consumer_stops_the_current_manager(kind: Any) -> None:
    blocked = Probe(["a", "b"], kind=kind, faults=Faults(block_at=1, cleanup_turns=2))
    script = Script([blocked, Probe(["never"])])
    got: list[str] = []

    async def consumer() -> None:
        async for manager in script.round():
            async for token in manager:
                got.append(token)

    task = asyncio.ensure_future(consumer())
    await asyncio.wait_for(blocked.blocked.wait(), BOUND)
    waiter = asyncio.ensure_future(script.managers[0].message())
    task.cancel()
    await asyncio.wait([task, waiter], timeout=BOUND)
    assert task.cancelled() and got == ["a"]
    assert isinstance(waiter.exception(), StreamIncompleteError)
    assert script.managers[0].state is StreamState.INCOMPLETE and blocked.closed()
    assert len(script.calls) == 1


class _closing:
    """``contextlib.aclosing`` for an AsyncIterator typed as such (3.10 has aclosing; this keeps the type)."""

    def __init__(self, it: AsyncIterator[StreamManager[Completion]]) -> None:
        self.it = it

    async def __aenter__(self) -> AsyncIterator[StreamManager[Completion]]:
        return self.it

    async def __aexit__(self, *exc: object) -> None:
        aclose = getattr(self.it, "aclose", None)
        if aclose is not None:
            await aclose()
