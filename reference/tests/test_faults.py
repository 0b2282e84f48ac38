"""Every fault of the reference issue, each proving the requirement in its name: engine errors (SM-8),
contract violations (SM-9), early stops (SM-10), cancellation (SM-11), the lock (SM-12), ``after`` (SM-13).
Every case ends with the harness's invariant checker (``Case.verify``), which also proves SM-15 (no task
left, nothing reported by the loop) for it."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from lmstream.reference import StreamManager
from lmstream.spec import StreamIncompleteError, StreamProtocolError, StreamState

from ._harness import (
    AfterError,
    AfterProbe,
    Case,
    CleanupError,
    Comp,
    Consumer,
    ConsumerError,
    CountingLock,
    EngineError,
    EngineKind,
    Faults,
    Msg,
    Probe,
    When,
    other_tasks,
    turns,
)

KINDS: tuple[EngineKind, ...] = ("gen", "cls")
TOKENS = ["a", " b", " c", " d"]
WAITERS: list[tuple[int, When]] = [(0, "before"), (1, "before"), (2, "during"), (50, "after"), (50, "during")]


# ---------------------------------------------------------------------------------------------- SM-8
@pytest.mark.parametrize(("n", "when"), WAITERS, ids=[f"{n}-{w}" for n, w in WAITERS])
@pytest.mark.parametrize("at", [0, 2, 4], ids=["first", "middle", "after-last-token"])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm8_engine_error_reaches_consumer_and_waiters_as_the_same_object(
    kind: EngineKind, at: int, n: int, when: When
) -> None:
    case = Case(TOKENS, kind=kind, faults=Faults(raise_at=at), lock=True, after=AfterProbe())
    await case.run(waiters=n, when=when)
    await case.verify(StreamState.FAILED, error=case.probe.faults.error, tokens=TOKENS[:at])


@pytest.mark.parametrize("kind", KINDS)
async def test_sm8_engine_error_after_the_completion_reaches_everyone(kind: EngineKind) -> None:
    """The engine yielded its completion and then raised instead of ending: the stream failed."""
    items = [*TOKENS, Comp(Msg("assistant", "a b c d"))]
    case = Case(items, kind=kind, faults=Faults(raise_at=len(items)), lock=True, after=AfterProbe())
    await case.run(waiters=3, when="during")
    await case.verify(StreamState.FAILED, error=case.probe.faults.error)


@pytest.mark.parametrize("kind", KINDS)
async def test_sm8_engine_error_with_no_consumer_reaches_every_waiter(kind: EngineKind) -> None:
    case = Case(TOKENS, kind=kind, faults=Faults(raise_at=1))
    case.spawn_waiters(50)  # the first drives the stream (SM-6), the others wait
    await case.verify(StreamState.FAILED, error=case.probe.faults.error)


class EngineAbort(BaseException):
    """A BaseException that is not an Exception (asyncio re-raises KeyboardInterrupt out of the loop, so
    that one cannot be used here)."""


@pytest.mark.parametrize("kind", KINDS)
async def test_sm8_a_base_exception_from_the_engine_is_passed_on_unchanged(kind: EngineKind) -> None:
    error = EngineAbort()  # not an Exception: still the engine's, still the same object
    case = Case(TOKENS, kind=kind, faults=Faults(raise_at=1, error=error), lock=True)
    await case.run(waiters=2, when="during")
    await case.verify(StreamState.FAILED, error=error)


async def test_sm8_the_engine_cleanup_raising_on_normal_end_is_the_engine_error() -> None:
    """An async generator whose ``finally`` raises at the end of a normal stream raises that error out of
    the stream: the engine failed, and everyone gets that error."""
    case = Case(TOKENS, faults=Faults(cleanup_raises=True, cleanup_turns=2), lock=True, after=AfterProbe())
    await case.run(waiters=2, when="during")
    await case.finish()
    assert isinstance(case.probe.raised, CleanupError)
    await case.verify(StreamState.FAILED, error=case.probe.raised)


@pytest.mark.parametrize("kind", KINDS)
async def test_sm8_the_engine_error_is_kept_when_its_cleanup_also_raises(kind: EngineKind) -> None:
    """gen: the cleanup's error replaces the engine's inside the generator (Python's semantics), and that is
    what the stream raised; cls: the stream raised EngineError and its aclose() raised CleanupError, which
    the manager does not let replace the engine's error."""
    case = Case(TOKENS, kind=kind, faults=Faults(raise_at=2, cleanup_raises=True, cleanup_turns=3), lock=True)
    await case.run(waiters=2, when="during")
    await case.finish()
    raised = case.probe.raised if kind == "gen" else case.probe.faults.error
    assert isinstance(raised, CleanupError if kind == "gen" else EngineError)
    await case.verify(StreamState.FAILED, error=raised)


# ---------------------------------------------------------------------------------------------- SM-9
BAD_ITEMS: list[object] = [b"bytes", None, 7, 1.5, {"text": "x"}, ValueError("yielded, not raised")]


@pytest.mark.parametrize("bad", BAD_ITEMS, ids=["bytes", "none", "int", "float", "dict", "exception"])
@pytest.mark.parametrize("at", [0, 2])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm9_a_wrong_item_is_an_es2_protocol_error_and_never_reaches_the_consumer(
    kind: EngineKind, at: int, bad: object
) -> None:
    items = [*TOKENS[:at], bad, *TOKENS[at:]]
    case = Case(items, kind=kind, lock=True, after=AfterProbe())
    await case.run(waiters=2, when="during" if at else "before")
    await case.verify(
        StreamState.FAILED, error=StreamProtocolError, requirement_id="ES-2", tokens=TOKENS[:at]
    )
    error = case.outcome.error
    assert isinstance(error, StreamProtocolError) and error.item is bad and "\n" not in str(error)
    assert bad not in case.outcome.tokens


@pytest.mark.parametrize(
    "extra", ["late token", Comp(Msg("assistant", "again"))], ids=["token-after", "second-completion"]
)
@pytest.mark.parametrize("kind", KINDS)
async def test_sm9_an_item_after_the_completion_is_an_es3_protocol_error(
    kind: EngineKind, extra: object
) -> None:
    items = [*TOKENS, Comp(Msg("assistant", "a b c d")), extra]
    case = Case(items, kind=kind, lock=True, after=AfterProbe())
    await case.run(waiters=2, when="during")
    await case.verify(StreamState.FAILED, error=StreamProtocolError, requirement_id="ES-3", tokens=TOKENS)
    assert "late token" not in case.outcome.tokens


async def test_sm9_a_completion_with_bad_token_counts_is_reported_with_es4() -> None:
    case = Case(["a", Comp(Msg("assistant", "a"), prompt_tokens=-1)], lock=True)
    await case.run(waiters=1, when="during")
    await case.verify(StreamState.FAILED, error=StreamProtocolError, requirement_id="ES-4", tokens=["a"])


async def test_sm9_the_protocol_error_keeps_a_cleanup_failure_as_its_cause() -> None:
    case = Case(["a", None], kind="cls", faults=Faults(cleanup_raises=True))
    case.start()
    await case.verify(StreamState.FAILED, error=StreamProtocolError, requirement_id="ES-2", tokens=["a"])
    assert isinstance(case.outcome.error, StreamProtocolError)
    assert isinstance(case.outcome.error.__cause__, CleanupError)


# ---------------------------------------------------------------------------------------------- SM-10
EARLY: list[Consumer] = [
    Consumer("break", at=1),
    Consumer("break", at=2),
    Consumer("break", at=4),  # after the last token, before the engine ended
    Consumer("aclose", at=0),
    Consumer("aclose", at=2),
    Consumer("aclose", at=4),
    Consumer("raise", at=1),
    Consumer("raise", at=4),
    Consumer("drop"),
]


@pytest.mark.parametrize(("n", "when"), [(0, "before"), (2, "before"), (50, "during")], ids=["0", "2", "50"])
@pytest.mark.parametrize("consumer", EARLY, ids=[f"{c.kind}-{c.at}" for c in EARLY])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm10_an_early_stop_closes_the_engine_and_releases_everyone(
    kind: EngineKind, consumer: Consumer, n: int, when: When
) -> None:
    if when == "during" and consumer.kind in ("drop", "aclose"):
        when = "before"
    case = Case(TOKENS, kind=kind, faults=Faults(cleanup_turns=3), lock=True, after=AfterProbe())
    await case.run(consumer, waiters=n, when=when)
    await case.verify(
        StreamState.INCOMPLETE,
        consumer_error=ConsumerError if consumer.kind == "raise" else None,
        tokens=TOKENS[: consumer.at],
    )


async def test_sm10_aclose_of_an_unstepped_iterator_that_is_kept_releases_everyone() -> None:
    """``async with aclosing(aiter(stream)) as it`` that never steps: the name ``it`` keeps the closed
    iterator alive, and results must not wait for it to be garbage-collected."""
    case = Case(TOKENS, lock=True)
    case.spawn_waiters(2)
    it: Any = aiter(case.manager)  # claimed first: the waiters (scheduled, not yet run) will wait for it
    await turns(2)
    await it.aclose()  # an async generator's
    case.driven_by_consumer = False
    await case.verify(StreamState.INCOMPLETE, tokens=[])
    assert it.ag_frame is None  # still referenced here, and closed


async def test_sm10_keeping_the_manager_does_not_keep_an_abandoned_iterator_alive() -> None:
    """Break, drop the iterator, keep a handle to the manager (e.g. to stop it later): the iterator is
    finalized, so the engine is closed and the waiters are released."""
    case = Case(TOKENS, faults=Faults(cleanup_turns=3), lock=True)
    manager = case.manager  # the handle that stays
    it = aiter(manager)
    assert await anext(it) == "a"
    case.spawn_waiters(3)
    await turns(2)
    assert not any(w.done() for w in case.waiters)
    del it  # abandoned; only `manager` and `case` remain
    case.driven_by_consumer = False
    await case.verify(StreamState.INCOMPLETE, tokens=["a"])
    assert manager.state is StreamState.INCOMPLETE


async def test_sm10_keeping_the_manager_does_not_keep_an_iterator_whose_first_step_ran_in_its_own_task() -> (
    None
):
    """``await asyncio.wait_for(anext(it), t)`` runs the step in a task of its own on 3.10 and 3.11; that
    finished task references the iterator (through its step), and the manager must not keep it."""
    case = Case(TOKENS, faults=Faults(cleanup_turns=2), lock=True)
    it = aiter(case.manager)
    assert await asyncio.ensure_future(anext(it)) == "a"
    case.spawn_waiters(3)
    del it  # abandoned; the manager (held by `case`) is the only other way to it
    case.driven_by_consumer = False
    await case.verify(StreamState.INCOMPLETE, tokens=["a"])


@pytest.mark.parametrize("thrown", ["cancel", "athrow"])
async def test_sm10_sm11_an_exception_thrown_into_the_iterator_before_its_first_step_ends_the_stream(
    thrown: str,
) -> None:
    """A first step that runs in a task of its own and is cancelled before it ran throws CancelledError
    into the iterator before it took any step; ``athrow()`` does the same by hand. The stream ends
    incomplete at once, although the iterator is still referenced."""
    case = Case(TOKENS, lock=True)
    it: Any = aiter(case.manager)
    case.spawn_waiters(3)
    await turns(2)
    if thrown == "cancel":
        step = asyncio.ensure_future(anext(it))
        step.cancel()
        await asyncio.wait([step], timeout=5)
        assert step.cancelled()
    else:
        with pytest.raises(ConsumerError):
            await it.athrow(ConsumerError("thrown in"))
    case.driven_by_consumer = False
    await case.verify(StreamState.INCOMPLETE, tokens=[])
    assert not case.probe.started and it.ag_frame is None


async def test_sm10_an_iterator_in_a_reference_cycle_is_released_when_collected() -> None:
    case = Case(TOKENS, lock=True)
    holder: list[object] = []
    it = aiter(case.manager)
    holder.append(it)
    holder.append(holder)  # a cycle: only the garbage collector frees it
    assert await anext(it) == "a"
    del it, holder
    gc.collect()
    case.driven_by_consumer = False
    await case.verify(StreamState.INCOMPLETE, tokens=["a"])


@pytest.mark.parametrize("kind", KINDS)
async def test_sm10_a_failing_engine_cleanup_on_an_early_stop_is_kept_as_the_cause(kind: EngineKind) -> None:
    case = Case(TOKENS, kind=kind, faults=Faults(cleanup_raises=True, cleanup_turns=2), lock=True)
    await case.run(Consumer("aclose", at=2), waiters=2)
    await case.verify(StreamState.INCOMPLETE, tokens=TOKENS[:2])
    with pytest.raises(StreamIncompleteError) as info:
        await case.manager.completion()
    assert isinstance(info.value.__cause__, CleanupError)


# ---------------------------------------------------------------------------------------------- SM-11
@pytest.mark.parametrize("n", [0, 1, 50])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm11_consumer_cancelled_while_awaiting_a_token(kind: EngineKind, n: int) -> None:
    case = Case(TOKENS, kind=kind, faults=Faults(block_at=2, cleanup_turns=2), lock=True, after=AfterProbe())
    await case.run(waiters=n)
    task = case.task
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    task.cancel()
    await case.verify(StreamState.INCOMPLETE, consumer_error=asyncio.CancelledError, tokens=TOKENS[:2])
    assert task.cancelled() and case.probe.block_cancelled


@pytest.mark.parametrize("kind", KINDS)
async def test_sm11_a_waiter_driving_the_stream_cancelled_releases_the_other_waiters(
    kind: EngineKind,
) -> None:
    case = Case(TOKENS, kind=kind, faults=Faults(block_at=1), lock=True)
    driver, *others = case.spawn_waiters(4)
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    driver.cancel()
    await asyncio.wait([driver], timeout=5)
    assert driver.cancelled()
    case.waiters = others
    case.waiter_kinds = case.waiter_kinds[1:]
    await case.verify(StreamState.INCOMPLETE, tokens=["a"])


async def test_sm11_sm13_consumer_cancelled_while_awaiting_after() -> None:
    after = AfterProbe(block=True)
    case = Case(TOKENS, lock=True, after=after)
    await case.run(waiters=3)
    task = case.task
    await asyncio.wait_for(after.entered.wait(), 5)
    assert case.manager.state is StreamState.STREAMING and not any(w.done() for w in case.waiters)
    task.cancel()
    await case.verify(
        StreamState.INCOMPLETE, consumer_error=asyncio.CancelledError, tokens=TOKENS, after_calls=1
    )
    assert len(after.calls) == 1  # called once, then interrupted by the cancellation: no result recorded


async def test_sm11_sm12_consumer_cancelled_while_waiting_for_a_lock_another_manager_holds() -> None:
    lock = CountingLock()
    holder = Case(["x"], faults=Faults(block_at=0), lock=lock)
    holder.start()
    await asyncio.wait_for(holder.probe.blocked.wait(), 5)
    waiting = Case(TOKENS, lock=lock, after=AfterProbe())
    await waiting.run(waiters=3)
    task = waiting.task
    await turns(3)
    assert waiting.manager.state is StreamState.STREAMING and not waiting.probe.started
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert lock.locked() and lock.acquires == 1  # still the holder's
    await holder.manager.aclose()
    await holder.verify(StreamState.STOPPED, tokens=[])
    await waiting.verify(StreamState.INCOMPLETE, consumer_error=asyncio.CancelledError, tokens=[])
    assert lock.acquires == lock.releases == 1 and not waiting.probe.started


@pytest.mark.parametrize("kind", KINDS)
async def test_sm11_consumer_cancelled_while_the_engine_cleanup_takes_turns(kind: EngineKind) -> None:
    """Cancelled in its loop body; the manager's iterator is then finalized, and the engine's slow cleanup
    runs to its end."""
    case = Case(TOKENS, kind=kind, faults=Faults(cleanup_turns=5), lock=True)
    await case.run(Consumer(pause_at=2), waiters=2)
    task = case.task
    await asyncio.wait_for(case.paused.wait(), 5)
    task.cancel()
    await case.verify(StreamState.INCOMPLETE, consumer_error=asyncio.CancelledError, tokens=TOKENS[:2])
    assert case.probe.cleanup_done


# ---------------------------------------------------------------------------------------------- SM-12
async def test_sm12_the_lock_is_held_at_every_engine_request_and_released_once() -> None:
    case = Case([*TOKENS, Comp(Msg("assistant", "a b c d"))], lock=True, after=AfterProbe())
    case.start()
    await case.verify(StreamState.COMPLETED)
    assert case.probe.lock_held == [True] * 6  # four tokens, the completion, the end
    assert case.after is not None and case.after.lock_held_at_call == [True]
    assert case.lock is not None and (case.lock.acquires, case.lock.releases) == (1, 1)


async def test_sm12_a_lock_contended_by_several_managers_serialises_them_and_ends_free() -> None:
    """Six managers on one lock, started at once, ending in six different ways: at most one engine runs at a
    time, each is locked at every request, and the lock ends free, released once per acquisition."""
    lock = CountingLock()
    probes: list[Probe] = []
    overlaps: list[str] = []

    def exclusive(probe: Probe, index: int) -> None:
        if index == 0:
            probes.append(probe)
            overlaps.extend(repr(p) for p in probes if p is not probe and not p.closed())

    plans: list[tuple[Faults, Consumer, StreamState]] = [
        (Faults(), Consumer(), StreamState.COMPLETED),
        (Faults(raise_at=1), Consumer(), StreamState.FAILED),
        (Faults(cleanup_turns=3), Consumer("break", at=2), StreamState.INCOMPLETE),
        (Faults(), Consumer("raise", at=1), StreamState.INCOMPLETE),
        (Faults(block_at=1), Consumer(), StreamState.STOPPED),
        (Faults(cleanup_turns=2), Consumer("aclose", at=3), StreamState.INCOMPLETE),
    ]
    cases = [Case(TOKENS, faults=f, lock=lock, on_request=exclusive, watch=True) for f, _, _ in plans]
    for case, (_, consumer, _) in zip(cases, plans, strict=True):
        case.start(consumer)
        case.spawn_waiters(2)
    for case, (faults, _, _) in zip(cases, plans, strict=True):
        if faults.block_at is not None:
            await asyncio.wait_for(case.probe.blocked.wait(), 5)
            await case.manager.aclose()
    for case, (faults, consumer, state) in zip(cases, plans, strict=True):
        await case.verify(
            state,
            error=faults.error if state is StreamState.FAILED else None,
            consumer_error=ConsumerError if consumer.kind == "raise" else None,
        )
    assert not lock.locked() and lock.acquires == lock.releases == len(plans)
    assert overlaps == [] and len(probes) == len(plans)


# ---------------------------------------------------------------------------------------------- SM-13
@pytest.mark.parametrize("n", [0, 2, 50])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm13_after_runs_once_with_the_completion_before_the_loop_ends_or_waiters_wake(
    kind: EngineKind, n: int
) -> None:
    after = AfterProbe(turns=5)  # takes several turns: waiters and the consumer must not move meanwhile
    case = Case(TOKENS, kind=kind, lock=True, after=after)
    await case.run(waiters=n, when="during")
    await case.verify(StreamState.COMPLETED)
    assert after.calls == [await case.manager.completion()]
    assert after.consumer_loop_ended_at_call == [False] and after.waiters_done_at_call == [False]


@pytest.mark.parametrize("n", [0, 2, 50])
async def test_sm13_when_after_raises_consumer_and_waiters_get_that_error(n: int) -> None:
    error = AfterError("history write failed")
    after = AfterProbe(error=error, turns=2)
    case = Case(TOKENS, lock=True, after=after)
    await case.run(waiters=n, when="during")
    await case.verify(StreamState.FAILED, error=error)
    assert len(after.calls) == 1


async def test_sm13_after_is_not_called_on_error_early_stop_cancel_or_stop() -> None:
    """The checker asserts ``after`` was not called for each of these endings."""
    error_case = Case(TOKENS, faults=Faults(raise_at=4), after=AfterProbe())
    error_case.start()
    await error_case.verify(StreamState.FAILED, error=error_case.probe.faults.error)

    protocol_case = Case([*TOKENS, None], after=AfterProbe())
    protocol_case.start()
    await protocol_case.verify(StreamState.FAILED, error=StreamProtocolError, requirement_id="ES-2")

    early_case = Case(TOKENS, after=AfterProbe())
    early_case.start(Consumer("break", at=4))
    await early_case.verify(StreamState.INCOMPLETE)

    cancel_case = Case(TOKENS, faults=Faults(block_at=4), after=AfterProbe())
    cancel_case.start()
    task = cancel_case.task
    await asyncio.wait_for(cancel_case.probe.blocked.wait(), 5)
    task.cancel()
    await cancel_case.verify(StreamState.INCOMPLETE, consumer_error=asyncio.CancelledError)

    stop_case = Case(TOKENS, faults=Faults(block_at=4), after=AfterProbe())
    stop_case.start()
    await asyncio.wait_for(stop_case.probe.blocked.wait(), 5)
    await stop_case.manager.aclose()
    await stop_case.verify(StreamState.STOPPED)
    for case in (error_case, protocol_case, early_case, cancel_case, stop_case):
        assert case.after is not None and case.after.calls == []


async def test_sm13_after_sees_the_engine_completion_object() -> None:
    own = Comp(Msg("assistant", "a b c d"))
    after = AfterProbe()
    case = Case([*TOKENS, own], after=after)
    case.spawn_waiters(1)  # driven by a waiter (SM-6): after still runs before it is released
    await case.verify(StreamState.COMPLETED, completion=own)
    assert after.calls == [own] and after.waiters_done_at_call == [False]


# ---------------------------------------------------------------------------------------------- SM-15
async def test_sm15_the_manager_starts_no_task_of_its_own_on_any_normal_path() -> None:
    before = other_tasks()
    manager = StreamManager(Probe(TOKENS).stream, "assistant", lock=asyncio.Lock())
    async for _ in manager:
        assert other_tasks() == before  # the consumer's task drives; nothing else is started
    await manager.completion()
    assert other_tasks() == before
