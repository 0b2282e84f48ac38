"""Shared steps of the stop checks (SM-21 to SM-28), the manager's side: the time bounds and scripts, an
engine that can block and whose close takes time, managers built over it (a :class:`Rig`), stoppers in tasks
of their own and what was true when their ``aclose()`` returned, an ``after`` that records, and ``state``,
read by value and watched turn by turn. The consumer's side (its loop, the waiters on the result, a stop of a
loop blocked in the engine) is in :mod:`._stop_consumers`; the reproduction snippets are in
:mod:`._stop_snippets`.

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
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import AsyncGeneratorType
from typing import Any, Final, cast

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception
from lmstream.conformance.model import CheckSkipped
from lmstream.conformance.scripted import Block, StreamProbe, scripted_stream
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamState, describe_item, is_allowed_transition

from ._manager_support import ROLE, TOKENS, CountingLock, construct

__all__ = [
    "BLOCKED",
    "LATER",
    "NO_ACLOSE",
    "PROMPT",
    "SCRIPT",
    "AfterProbe",
    "Rig",
    "Snapshot",
    "StateWatcher",
    "StopProbe",
    "aclose_of",
    "as_state",
    "describe_state",
    "make_rig",
    "settled",
    "spawn_stoppers",
    "state_of",
    "stop_stream",
    "terminal",
    "turns_until",
    "until",
    "until_blocked",
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
StopProbe = StreamProbe
"""The probe of :func:`stop_stream` (kept as a name: reproduction snippets import it)."""


def stop_stream(
    script: Iterable[object], probe: StreamProbe | None = None, *, cleanup_turns: int = 0, pause: float = 0.0
) -> AsyncGenerator[Any, None]:
    """:func:`~lmstream.conformance.scripted.scripted_stream` with a cleanup that takes ``cleanup_turns``
    event-loop turns (kept as a name: reproduction snippets import it)."""
    return scripted_stream(script, probe, pause=pause, cleanup_turns=cleanup_turns)


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
    manager = construct(target, engine, ROLE, after=after, lock=counting)
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
