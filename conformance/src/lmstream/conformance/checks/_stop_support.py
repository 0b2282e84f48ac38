"""Shared steps of the stop checks (SM-21 to SM-28): an engine that can block and whose close takes time,
managers built over it, consumers and stoppers in tasks of their own, what was true when ``aclose()``
returned, a state watcher, and reproduction snippets.

**Who judges what.** SM-22, SM-24, SM-25 and SM-28 overlap (each names the engine's close, the lock, the
error), so that a broken manager fails exactly the requirement it breaks, each observation has one owner:

* SM-22: everything that must hold *when* ``aclose()`` returns (engine closed, lock not held, state terminal),
  whenever and from wherever it is called; and that it returns at all.
* SM-24: the consumer's loop (ends promptly, cleanly, with no token after the stop, without the engine's
  help); and, *eventually*, the engine closed, the lock released no more than once, ``after`` not called,
  every result raising :class:`~lmstream.spec.StreamIncompleteError`. A lock still held after a stop is
  SM-22's failure, reported there.
* SM-25: the same for a stop before iteration (the engine never read, iteration empty).
* SM-26: the consumer's *task* (its cancellation count, pending cancellations, timeouts, task groups, a real
  cancellation); never how its loop ended.
* SM-27: ``state``'s type, its path and where it ends; SM-22 and SM-28 read the *value* only (a ``str``
  equal to a state's value is judged by SM-27 alone).
* SM-28: the error's ``reason`` and ``text``.

A check that needs an engine-blocked stop to complete, but whose manager does not end the loop promptly
(SM-24's failure), notes it, releases the engine and judges its own requirement on what follows.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import AsyncGeneratorType
from typing import Any, Final, cast

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, describe_items, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped
from lmstream.conformance.scripted import Block, Fail, Pause, StreamProbe
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamIncompleteError, StreamState, describe_item, is_allowed_transition

from ._manager_support import (
    RESULT_METHODS,
    ROLE,
    TOKENS,
    CountingLock,
    Outcome,
    ScriptCompletion,
    call_name,
    completion_for,
    outcomes,
    spawn_waiters,
)

__all__ = [
    "BLOCKED",
    "CONSUME",
    "ENDED_AT_ONCE",
    "LATER",
    "LOOK",
    "NO_ACLOSE",
    "PROMPT",
    "RESULT",
    "SCRIPT",
    "STOP",
    "STOP_AND_LOOK",
    "AfterProbe",
    "BlockedStop",
    "Consumer",
    "Rig",
    "Snapshot",
    "StateWatcher",
    "StopProbe",
    "aclose_of",
    "as_state",
    "describe_state",
    "incomplete_errors",
    "judge_incomplete",
    "make_rig",
    "pending_outcomes",
    "results_now",
    "settled",
    "spawn_pending",
    "spawn_stoppers",
    "state_of",
    "stop_reproduction",
    "stop_stream",
    "stop_while_blocked",
    "terminal",
    "turns_until",
    "until",
    "until_blocked",
    "wait_until_blocked",
]

PROMPT: Final = 0.1
"""Seconds within which what a requirement says happens at once (a loop ending on a stop) must happen."""

LATER: Final = 0.25
"""Seconds within which what must happen eventually (an engine closed, a waiter released) must happen."""

NO_ACLOSE: Final = "the manager does not offer aclose() (SM-21)"
"""The reason every SM-22 to SM-28 check gives when it skips a manager without ``aclose()``."""

SCRIPT: Final[tuple[object, ...]] = TOKENS
"""The standard script: the standard tokens, no completion (the manager builds one, SM-4), so that a stop
check never depends on the manager accepting a structural completion (SM-14)."""

BLOCKED: Final[tuple[object, ...]] = (*TOKENS[:2], Block(), *TOKENS[2:])
"""The standard script with the engine blocked (awaiting its next item) after two tokens."""


# ---------------------------------------------------------------------------------------------- engine
@dataclass
class StopProbe(StreamProbe):
    """A :class:`~lmstream.conformance.scripted.StreamProbe` that also tells when the stream's cleanup
    began (``cleanup_started``); ``cleanup_ran`` is set when it has *finished*, all its turns included."""

    cleanup_started: bool = False


async def stop_stream(
    script: Iterable[object], probe: StopProbe | None = None, *, cleanup_turns: int = 0, pause: float = 0.0
) -> AsyncGenerator[Any, None]:
    """:func:`~lmstream.conformance.scripted.scripted_stream` whose cleanup (its ``finally``) takes
    ``cleanup_turns`` event-loop turns, as closing a provider connection does. While it runs, the generator
    is running: an ``__anext__()`` then raises "asynchronous generator is already running"."""
    probe = StopProbe() if probe is None else probe
    probe.requests += 1
    try:
        for step in script:
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Block):
                await probe.wait_for_release()
            elif isinstance(step, Fail):
                raise step.error
            else:
                await asyncio.sleep(pause)
                probe.yielded.append(step)
                yield step
                probe.requests += 1
        probe.ended = True
    except GeneratorExit:
        probe.closed = True
        raise
    except asyncio.CancelledError:
        probe.cancelled = True
        raise
    except BaseException as exc:
        probe.raised = exc
        raise
    finally:
        probe.cleanup_started = True
        for _ in range(cleanup_turns):
            await asyncio.sleep(0)
        probe.cleanup_ran = True


async def until_blocked(probe: StreamProbe, timeout: float = 1.0) -> None:
    """Wait until a scripted stream is waiting at its :class:`~lmstream.conformance.scripted.Block` (for
    reproduction snippets). :raises TimeoutError: after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe.blocked:
        if loop.time() >= deadline:
            raise TimeoutError(f"the stream did not reach its Block() within {timeout} s")
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------- waiting
async def until(ctx: CheckContext, predicate: Callable[[], bool], *, timeout: float) -> bool:
    """Let the loop run until ``predicate()`` is true, for at most ``timeout`` seconds (capped by the
    budget); whether it became true. Polls once per event-loop turn, then every millisecond."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(timeout, ctx.remaining())
    polls = 0
    while not predicate():
        if loop.time() >= deadline:
            return False
        polls += 1
        await asyncio.sleep(0 if polls < 200 else 0.001)
    return True


async def turns_until(predicate: Callable[[], bool], *, turns: int) -> bool:
    """Let the loop run until ``predicate()`` is true, for at most ``turns`` event-loop turns."""
    for _ in range(turns):
        if predicate():
            return True
        await asyncio.sleep(0)
    return predicate()


# ---------------------------------------------------------------------------------------------- after
class AfterProbe:
    """An ``after`` callback that records its calls, can wait for :meth:`release`, and can raise."""

    def __init__(self, *, gated: bool = False, error: Exception | None = None) -> None:
        self.calls: list[object] = []
        self.entered = False
        self.finished = False
        self.cancelled = False
        self.error = error
        self._gate = asyncio.Event() if gated else None

    async def __call__(self, completion: object) -> None:
        self.calls.append(completion)
        self.entered = True
        try:
            if self._gate is not None:
                await self._gate.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        self.finished = True

    def release(self) -> None:
        """Let a gated call return (or raise)."""
        if self._gate is not None:
            self._gate.set()


# ---------------------------------------------------------------------------------------------- state
def as_state(value: object) -> StreamState | None:
    """The :class:`StreamState` whose value ``value`` is (``value`` itself for a member), else ``None``.

    SM-22 and SM-28 judge the value of ``state`` through this; its type is SM-27's to judge.
    """
    try:
        return StreamState(value)
    except (ValueError, TypeError):
        return None


_MISSING: Final[Any] = object()


@dataclass(frozen=True)
class _Unreadable:
    """What :func:`state_of` gives when reading ``state`` raised."""

    error: Exception


def state_of(manager: object) -> object:
    """``manager.state``; a marker when it has none, an :class:`_Unreadable` when reading it raised."""
    try:
        return getattr(manager, "state", _MISSING)
    except Exception as exc:
        return _Unreadable(exc)


def describe_state(value: object) -> str:
    """``'stopped'`` for a member; ``str 'stopped'``, ``no state`` or what reading it raised otherwise."""
    if value is _MISSING:
        return "no state"
    if isinstance(value, _Unreadable):
        return f"unreadable (reading it raised {describe_exception(value.error)})"
    if isinstance(value, StreamState):
        return repr(value.value)
    return describe_item(value)


def terminal(manager: object) -> bool:
    """Whether the manager's state (by value) is terminal."""
    state = as_state(state_of(manager))
    return state is not None and state.is_terminal


# ---------------------------------------------------------------------------------------------- rigs
@dataclass
class Snapshot:
    """What was true at one moment (when an ``aclose()`` call returned): the SM-22 conditions, and the
    exception the call raised, if it raised one."""

    engine_closed: bool
    acquired: int
    released: int
    state: object
    error: Exception | None = None

    def incomplete(self) -> list[str]:
        """What of the stop was not complete, in words (empty when it was)."""
        missing: list[str] = []
        if not self.engine_closed:
            missing.append("the engine stream was not closed yet")
        if self.acquired > self.released:
            missing.append(f"the lock was still held (acquired {self.acquired}, released {self.released})")
        state = as_state(self.state)
        if state is None or not state.is_terminal:
            missing.append(f"state was {describe_state(self.state)}, not terminal")
        return missing


@dataclass
class Rig:
    """One manager the check built over one :func:`stop_stream`, with what it was given."""

    manager: Any
    probe: StopProbe
    engine: AsyncGeneratorType[Any, None]
    items: tuple[object, ...]
    lock: CountingLock | None
    after: AfterProbe | None
    cleanup_turns: int
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by every stopper of :func:`spawn_stoppers` when its ``aclose()`` returns."""

    def engine_closed(self) -> bool:
        """Whether the engine stream is finished (closed, ended or failed): its cleanup has run, or, never
        started, it was closed unread."""
        return self.engine.ag_frame is None

    def snapshot(self) -> Snapshot:
        """The SM-22 conditions now."""
        acquired = self.lock.acquisitions if self.lock is not None else 0
        released = self.lock.releases if self.lock is not None else 0
        return Snapshot(self.engine_closed(), acquired, released, state_of(self.manager))


async def make_rig(
    target: ManagerTarget,
    ctx: CheckContext,
    items: Sequence[object] = SCRIPT,
    *,
    lock: bool = False,
    after: AfterProbe | None = None,
    cleanup_turns: int = 0,
    require_aclose: bool = True,
) -> Rig:
    """Build a manager over a :func:`stop_stream` of ``items``.

    :param require_aclose: skip the check (:data:`NO_ACLOSE`) when the manager has no ``aclose()``.
    :raises CheckFailure: when the target raises instead of returning a manager.
    :raises CheckSkipped: see ``require_aclose``.
    """
    probe = StopProbe()
    # An async generator function's result is an AsyncGeneratorType (ag_frame tells when it is finished).
    engine = cast("AsyncGeneratorType[Any, None]", stop_stream(items, probe, cleanup_turns=cleanup_turns))
    counting = CountingLock() if lock else None
    try:
        manager = target(engine, ROLE, after=after, lock=counting)
    except Exception as exc:
        raise CheckFailure(
            f"calling {target.name}(stream_iter, role, after=..., lock=...) raised {describe_exception(exc)}",
            expected="a manager (ManagerFactory: kani's StreamManager constructor signature)",
        ) from exc
    if require_aclose and not callable(getattr(manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    return Rig(manager, probe, engine, tuple(items), counting, after, cleanup_turns)


async def settled(ctx: CheckContext, rig: Rig) -> bool:
    """Wait (:data:`LATER` at most) until the manager's state is terminal; whether it became so."""
    return await until(ctx, lambda: terminal(rig.manager), timeout=LATER)


async def aclose_of(manager: Any) -> None:
    """``await manager.aclose()`` (a non-coroutine ``aclose()`` that returns an awaitable is awaited too)."""
    result = manager.aclose()
    if inspect.isawaitable(result):
        await result


def spawn_stoppers(ctx: CheckContext, rig: Rig, count: int = 1) -> list[asyncio.Task[Snapshot]]:
    """Start ``count`` tasks that each await ``aclose()`` once and return the :class:`Snapshot` taken the
    moment it returned or raised (in the same step: nothing else ran in between). Only SM-22's checks judge
    an ``aclose()`` that raised; the others go on as if it had returned."""

    async def stop() -> Snapshot:
        try:
            await aclose_of(rig.manager)
        except Exception as exc:
            seen = rig.snapshot()
            seen.error = exc
        else:
            seen = rig.snapshot()
        rig.stopped.set()
        return seen

    return [ctx.spawn(stop(), name=f"lmstream stopper {i}") for i in range(count)]


# ---------------------------------------------------------------------------------------------- consumers
class Consumer:
    """A scripted consumer in a task of its own: ``async for token in manager``, recording each token and
    how the loop ended. The exception the loop raised (``CancelledError`` included) is recorded, not
    propagated, unless ``reraise_cancel`` (then a ``CancelledError`` ends the task cancelled).

    :param pause_at: after this many tokens, wait in the loop body until :meth:`resume` (the consumer is
        then "busy in its loop body"); :attr:`paused` tells when it got there.
    :param body: awaited in the loop body after every token with the count so far (e.g. a stop from the
        consumer's own task).
    :param start: called first thing in the consumer's task (e.g. to read its cancellation count).
    :param then: awaited after the loop ended, in the same task (e.g. to look at the task's cancellation).
    """

    def __init__(
        self,
        ctx: CheckContext,
        manager: Any,
        *,
        pause_at: int | None = None,
        body: Callable[[int], Awaitable[None]] | None = None,
        start: Callable[[], object] | None = None,
        then: Callable[[], Awaitable[None]] | None = None,
        reraise_cancel: bool = False,
        name: str = "lmstream consumer",
    ) -> None:
        self.tokens: list[object] = []
        self.error: BaseException | None = None
        self.ended = False
        self.ended_at: float | None = None
        self.paused = False
        self._resume = asyncio.Event()
        self._manager = manager
        self._pause_at = pause_at
        self._body = body
        self._start = start
        self._then = then
        self._reraise = reraise_cancel
        self.task: asyncio.Task[None] = ctx.spawn(self._run(), name=name)

    def resume(self) -> None:
        """Let a paused consumer go on to its next step."""
        self._resume.set()

    @property
    def text(self) -> str:
        """The concatenation of the ``str`` tokens received."""
        return "".join(t for t in self.tokens if isinstance(t, str))

    def describe(self) -> str:
        """``2 token(s) ' Hel', 'lo'; the loop ended normally`` (or raised, or had not ended)."""
        seen = f"{len(self.tokens)} token(s): {describe_items(self.tokens)}" if self.tokens else "no token"
        if not self.ended:
            return f"{seen}; the loop had not ended"
        if self.error is not None:
            return f"{seen}; the loop raised {describe_exception(self.error)}"
        return f"{seen}; the loop ended normally"

    async def _run(self) -> None:
        if self._start is not None:
            self._start()
        try:
            async for token in self._manager:
                self.tokens.append(token)
                if self._body is not None:
                    await self._body(len(self.tokens))
                if self._pause_at is not None and len(self.tokens) == self._pause_at:
                    self.paused = True
                    await self._resume.wait()
                    self.paused = False
        except (Exception, asyncio.CancelledError) as exc:
            self.error = exc
            if self._reraise and isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.ended = True
            self.ended_at = asyncio.get_running_loop().time()
        if self._then is not None:
            await self._then()


@dataclass
class BlockedStop:
    """How a stop of a loop blocked in the engine went (see :func:`stop_while_blocked`)."""

    consumer: Consumer
    stoppers: list[asyncio.Task[Snapshot]]
    prompt: bool
    """The loop ended within :data:`PROMPT` of the stop, the engine never released by the check."""
    waited: float
    """Seconds from the stop to the loop's end (or until the check gave up waiting)."""
    released: bool
    """The check had to release the engine for the loop to end."""

    def note(self) -> str:
        """The note a check other than SM-24's makes when it had to release the engine."""
        return (
            f"the consumer's loop had not ended {seconds(PROMPT)} after aclose() while the engine was "
            "blocked (SM-24's check reports it); the engine was then released"
        )


async def wait_until_blocked(ctx: CheckContext, rig: Rig, consumer: Consumer) -> None:
    """Wait until the consumer has made the manager request the item the engine blocks at.

    :raises CheckSkipped: when it does not get there (the manager does not read the engine as SM-1 and
        SM-2 say, or the loop ended): there is no blocked engine to stop.
    """
    if not await until(ctx, lambda: rig.probe.blocked or consumer.ended, timeout=LATER):
        raise CheckSkipped(
            f"the manager did not read the engine up to its Block() within {seconds(LATER)} (the consumer "
            f"saw {consumer.describe()}), so there is no blocked engine to stop (see the SM-1 to SM-17 "
            "checks)"
        )
    if not rig.probe.blocked:
        raise CheckSkipped(
            f"the consumer's loop ended before the engine blocked ({consumer.describe()}), so there is no "
            "blocked engine to stop (see the SM-1 to SM-17 checks)"
        )


async def stop_while_blocked(
    ctx: CheckContext, rig: Rig, consumer: Consumer, *, stoppers: int = 1
) -> BlockedStop:
    """Once the engine is blocked under ``consumer``, stop the manager from ``stoppers`` other tasks (at
    once) and wait :data:`PROMPT` for the loop to end. If it has not, release the engine and wait
    :data:`LATER` more. Then wait (:data:`LATER`) for the stoppers. Never raises for what the manager does
    (but see :func:`wait_until_blocked`)."""
    await wait_until_blocked(ctx, rig, consumer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = spawn_stoppers(ctx, rig, stoppers)
    prompt = await until(ctx, lambda: consumer.ended, timeout=PROMPT)
    released = False
    if not prompt:
        released = True
        rig.probe.release()
        await until(ctx, lambda: consumer.ended, timeout=LATER)
    ended_at = consumer.ended_at if consumer.ended_at is not None else loop.time()
    await ctx.wait_tasks(tasks, timeout=LATER)
    return BlockedStop(consumer, tasks, prompt, ended_at - started, released)


# ---------------------------------------------------------------------------------------------- results
async def results_now(ctx: CheckContext, manager: Any) -> list[tuple[str, Outcome]]:
    """``completion()``, ``message()`` and ``await manager``, each in a task of its own, waited for
    :data:`LATER`; labelled ``"a later completion()"`` and so on."""
    tasks = spawn_waiters(ctx, manager, len(RESULT_METHODS), RESULT_METHODS)
    found = await outcomes(ctx, tasks, timeout=LATER)
    return [(f"a later {call_name(m)}", o) for m, o in zip(RESULT_METHODS, found, strict=True)]


def spawn_pending(ctx: CheckContext, manager: Any) -> list[tuple[str, asyncio.Task[object]]]:
    """``completion()``, ``message()`` and ``await manager``, each in a task of its own, started now (before
    a stop), labelled ``"a pending completion()"`` and so on; see :func:`pending_outcomes`."""
    tasks = spawn_waiters(ctx, manager, len(RESULT_METHODS), RESULT_METHODS)
    return [(f"a pending {call_name(m)}", t) for m, t in zip(RESULT_METHODS, tasks, strict=True)]


async def pending_outcomes(
    ctx: CheckContext, pending: Sequence[tuple[str, asyncio.Task[object]]]
) -> list[tuple[str, Outcome]]:
    """How the waiters of :func:`spawn_pending` ended, waited for :data:`LATER`."""
    found = await outcomes(ctx, [task for _, task in pending], timeout=LATER)
    return [(label, outcome) for (label, _), outcome in zip(pending, found, strict=True)]


def judge_incomplete(labelled: Sequence[tuple[str, Outcome]]) -> str | None:
    """The first result that did not raise :class:`StreamIncompleteError`, in words; ``None`` if all did."""
    for label, outcome in labelled:
        if outcome.pending or not isinstance(outcome.error, StreamIncompleteError):
            waited = f" after {seconds(LATER)}" if outcome.pending else ""
            return f"{label} {outcome.describe()}{waited}"
    return None


def incomplete_errors(labelled: Sequence[tuple[str, Outcome]]) -> list[tuple[str, StreamIncompleteError]]:
    """The :class:`StreamIncompleteError` s among the results, with their labels."""
    return [(label, o.error) for label, o in labelled if isinstance(o.error, StreamIncompleteError)]


# ---------------------------------------------------------------------------------------------- watcher
class StateWatcher:
    """Samples ``manager.state`` once per event-loop turn, from a task of its own, and remembers the first
    sample that is not a :class:`StreamState` or that moved against
    :data:`~lmstream.spec.STATE_TRANSITIONS` (SM-27)."""

    def __init__(self, ctx: CheckContext, manager: Any) -> None:
        self.trail: list[object] = []
        """The distinct values seen, in order (at most the first 20)."""
        self.problem: str | None = None
        self._manager = manager
        self._last: object = _MISSING
        self._running = True
        self.sample()
        self._task = ctx.spawn(self._run(), name="lmstream state watcher")

    def sample(self) -> object:
        """Read ``state`` now and judge the move from the previous sample; returns the value."""
        value = state_of(self._manager)
        if value is self._last:
            return value
        if len(self.trail) < 20:
            self.trail.append(value)
        if self.problem is None:
            if not isinstance(value, StreamState):
                self.problem = f"state was {describe_state(value)}, not a StreamState"
            elif isinstance(self._last, StreamState) and not is_allowed_transition(self._last, value):
                self.problem = (
                    f"state moved from {self._last.value!r} to {value.value!r}, which STATE_TRANSITIONS "
                    "does not allow"
                )
        self._last = value
        return value

    def path(self) -> str:
        """The values seen, ``'pending' -> 'streaming' -> 'stopped'``."""
        return " -> ".join(describe_state(v) for v in self.trail)

    async def _run(self) -> None:
        while self._running:
            self.sample()
            await asyncio.sleep(0)

    async def stop(self, ctx: CheckContext) -> None:
        """Take a last sample and end the watcher's task."""
        self._running = False
        self.sample()
        await ctx.wait_tasks([self._task], timeout=LATER)


# ---------------------------------------------------------------------------------------------- snippets
STOP: Final = "await asyncio.wait_for(manager.aclose(), 1)"
"""Reproduction line: a stop from the snippet's task, bounded."""

LOOK: Final = (
    "print('state:', repr(manager.state), 'lock held:', lock.locked(), "
    "'engine closed:', stream.ag_frame is None)"
)
"""Reproduction line: what SM-22 asks of a stop (for a snippet with a lock)."""

STOP_AND_LOOK: Final = (
    "async def stop_and_look():  # looks the moment aclose() returns",
    "    await manager.aclose()",
    f"    {LOOK}",
)
"""Reproduction lines: a coroutine that stops and shows at once what SM-22 asks of the stop."""

ENDED_AT_ONCE: Final = (
    "done, _ = await asyncio.wait([consumer], timeout=0.1)",
    "print('ended at once:', bool(done), 'cancelled:', bool(done) and consumer.cancelled(), tokens)",
)
"""Reproduction lines: whether the consumer task ended within 0.1 s, and how."""

RESULT: Final = "print(await asyncio.gather(manager.completion(), return_exceptions=True))"
"""Reproduction line: the result, or the exception it raises."""

CONSUME: Final[tuple[str, ...]] = (
    "tokens = []",
    "async def consume():",
    "    async for token in manager:",
    "        tokens.append(token)",
    "consumer = asyncio.create_task(consume())",
)
"""Reproduction lines: a consumer task that records its tokens."""


def stop_reproduction(
    ctx: CheckContext,
    items: Sequence[object],
    body: Sequence[str],
    *,
    lock: bool = False,
    after: bool = False,
    cleanup_turns: int = 0,
    imports: Sequence[str] = (),
    after_body: Sequence[str] = ("calls.append(completion)",),
) -> str:
    """A paste-able script: a :func:`stop_stream` of ``items`` (``probe`` records it), the target's manager
    over it (with an ``asyncio.Lock`` as ``lock`` and an ``after`` recording into ``calls`` when asked),
    then ``body``; ``imports`` are added to the script's imports, ``after_body`` is the body of ``after``."""
    target_imports, expression = ctx.target_reference()
    rendered = ", ".join(_render(item) for item in items)
    turns = f", cleanup_turns={cleanup_turns}" if cleanup_turns else ""
    setup = ["probe = StopProbe()", f"stream = stop_stream([{rendered}], probe{turns})"]
    if lock:
        setup.append("lock = asyncio.Lock()")
    if after:
        setup += ["calls = []", "async def after(completion):", *(f"    {line}" for line in after_body)]
    extra = (", after=after" if after else "") + (", lock=lock" if lock else "")
    setup.append(f"manager = {expression}(stream, {ROLE!r}{extra})")
    return script(
        [
            *imports,
            *target_imports,
            "from lmstream.conformance import Block, Fail, Pause",
            "from lmstream.conformance.checks._manager_support import completion_for",
            "from lmstream.conformance.checks._stop_support import StopProbe, stop_stream, until_blocked",
        ],
        [*setup, *body],
    )


def _render(item: object) -> str:
    if isinstance(item, ScriptCompletion):
        return "completion_for()" if item == completion_for() else repr(item)
    return repr(item)
