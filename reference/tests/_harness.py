"""The test harness of the reference manager: probe engines, scripted consumers, waiters and the invariant
checker that every case ends with.

Nothing here is a test. Test modules import it relatively (``from ._harness import ...``): with
``--import-mode=importlib`` pytest imports ``reference/tests`` as the namespace package ``reference.tests``,
which is also the name mypy gives it. ``conftest.py`` adds the loop guard every test runs under.

The pieces:

* :class:`Probe` -- one engine stream, as an async generator (``kind="gen"``) or a hand-written async
  iterator class with ``aclose()`` (``kind="cls"``). It yields a script of items (tokens, a completion, or
  deliberately wrong items) and records everything: each item it yielded, when each item was requested,
  whether the lock was held then, whether its cleanup ran (and finished), how often ``aclose()`` was awaited.
  Faults are configured with :class:`Faults`: raise at item k, block in ``Event().wait()`` at item k,
  swallow the cancellation there (non-conforming), a cleanup that takes several event-loop turns or raises.
* :class:`Case` -- one manager over one probe, with an optional counting lock and ``after`` probe, a scripted
  consumer (:class:`Consumer`), waiters in other tasks, an optional state watcher, and :meth:`Case.verify`,
  the invariant checker: the consumer saw the right exception (the very object for engine errors), every
  waiter resolved within a bound and agrees, the lock is free and was released once, the engine stream was
  closed, ``after`` ran exactly when it should have, no token was lost or invented, no read-ahead happened,
  the state moved only along the lifecycle, no task is left running and the event loop reported nothing.

Every wait is bounded (:data:`BOUND`); nothing sleeps to wait for a condition. Event-loop turns
(``asyncio.sleep(0)``) are used only to *place* an action at a given point of an interleaving.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, Final, Literal

from lmstream.reference import StreamManager
from lmstream.spec import (
    STATE_TRANSITIONS,
    StreamIncompleteError,
    StreamProtocolError,
    StreamState,
    is_allowed_transition,
    is_completion,
)

BOUND: Final = 5.0
"""Seconds within which anything that must happen has to happen (reached only when a test fails)."""

SHORT: Final = 0.2
"""Seconds we wait to show that something does *not* happen (kani's hangs)."""

SETTLE_TURNS: Final = 20
"""Event-loop turns allowed for finalizers (an abandoned iterator's ``aclose()`` task) to finish."""

EngineKind = Literal["gen", "cls"]
WaiterKind = Literal["completion", "message", "await"]
When = Literal["before", "during", "after"]
WAITER_KINDS: Final[tuple[WaiterKind, ...]] = ("completion", "message", "await")


# ---------------------------------------------------------------------------------------------- errors
class EngineError(Exception):
    """What a probe engine raises at item k."""


class CleanupError(Exception):
    """What a probe engine's cleanup raises when told to."""


class ConsumerError(Exception):
    """What a scripted consumer's loop body raises."""


class AfterError(Exception):
    """What an ``after`` probe raises when told to."""


class HarnessFailure(AssertionError):
    """An invariant did not hold; the message says which and shows the case."""


# ---------------------------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class Msg:
    """A plain message (role is a ``str``)."""

    role: object
    text: str | None


@dataclass(frozen=True)
class Comp:
    """A plain completion dataclass: satisfies the Completion protocol by shape (SM-14)."""

    message: Msg
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Token(str):
    """A ``str`` subclass token: must reach the consumer as the very same object (SM-1)."""

    __slots__ = ()


class _End:
    """Marks the request after the last item (the engine is asked once more and ends)."""


_END: Final = _End()


# ---------------------------------------------------------------------------------------------- lock
class CountingLock(asyncio.Lock):
    """An :class:`asyncio.Lock` that counts acquisitions and releases (SM-12: released exactly once)."""

    def __init__(self) -> None:
        super().__init__()
        self.acquires = 0
        self.releases = 0

    async def acquire(self) -> Literal[True]:
        result = await super().acquire()
        self.acquires += 1
        return result

    def release(self) -> None:
        self.releases += 1
        super().release()


# ---------------------------------------------------------------------------------------------- engines
@dataclass
class Faults:
    """What a probe engine does wrong.

    Item positions count from 0; ``len(items)`` is the request after the last item (the engine would end).
    """

    raise_at: int | None = None
    """Raise :attr:`error` when item ``raise_at`` is requested (instead of yielding it)."""
    error: BaseException | None = None
    """The exception raised at :attr:`raise_at` (default: a new :class:`EngineError`)."""
    block_at: int | None = None
    """Block in ``asyncio.Event().wait()`` (forever) when item ``block_at`` is requested."""
    swallow_cancel: bool = False
    """Non-conforming (ES-6): a cancellation while blocked is swallowed and the stream goes on."""
    cleanup_turns: int = 0
    """Event-loop turns the engine's cleanup takes (closing a connection)."""
    cleanup_raises: bool = False
    """The cleanup raises :class:`CleanupError` at its end."""


class Probe:
    """One engine stream that records what happened to it. ``stream`` is what a manager is given."""

    def __init__(
        self,
        items: Sequence[object],
        *,
        kind: EngineKind = "gen",
        faults: Faults | None = None,
        lock: asyncio.Lock | None = None,
        on_request: Callable[[Probe, int], None] | None = None,
    ) -> None:
        self.items: tuple[object, ...] = tuple(items)
        self.on_request = on_request
        self.kind: EngineKind = kind
        self.faults = faults if faults is not None else Faults()
        if self.faults.raise_at is not None and self.faults.error is None:
            self.faults.error = EngineError(f"engine failed at item {self.faults.raise_at}")
        self.lock = lock
        self.yielded: list[object] = []
        self.timeline: list[tuple[str, int]] = []
        """``("request", k)`` when item k was asked for; consumers add ``("received", k)``."""
        self.lock_held: list[bool] = []
        self.started = False
        self.cleanup_started = False
        self.cleanup_done = False
        self.cleanup_interrupted = False
        self.block_cancelled = False
        self.aclose_calls = 0
        self.raised: BaseException | None = None
        """The exception the engine itself raised (at ``raise_at`` or from its cleanup), if any."""
        self.blocked = asyncio.Event()
        self._gen: AsyncGenerator[object, None] | None = None
        self.stream: AsyncIterable[Any]
        if kind == "gen":
            self._gen = self._generate()
            self.stream = self._gen
        else:
            self.stream = _ProbeIterator(self)

    def __repr__(self) -> str:
        return f"Probe(items={self.items!r}, kind={self.kind!r}, faults={self.faults!r})"

    # -- what the checker reads
    @property
    def tokens(self) -> list[str]:
        """The ``str`` items the engine yielded before its first contract violation (what may reach the
        consumer: SM-1, SM-9)."""
        return tokens_of(self.yielded)

    @property
    def completion(self) -> object | None:
        """The engine's own completion, if the script has one."""
        return next((i for i in self.items if not isinstance(i, str) and is_completion(i)), None)

    def closed(self) -> bool:
        """Whether the stream is closed: ended, raised or ``aclose()``-d, with its cleanup run (or cut short
        by a cancellation, which interrupts an awaiting cleanup like any other await)."""
        cleanup_ok = self.cleanup_done or self.cleanup_interrupted
        if self._gen is not None:
            finished = (
                getattr(self._gen, "ag_frame", None) is None
            )  # an async generator's frame, gone at its end
            return finished and (not self.started or (self.cleanup_started and cleanup_ok))
        if not self.started:
            return self.aclose_calls > 0 and (self.cleanup_started and cleanup_ok)
        return self.cleanup_started and cleanup_ok

    # -- the behaviour shared by both kinds
    async def _before(self, index: int) -> None:
        self.started = True
        self.timeline.append(("request", index))
        if self.on_request is not None:
            self.on_request(self, index)
        if self.lock is not None:
            self.lock_held.append(self.lock.locked())
        f = self.faults
        if index == f.block_at:
            self.blocked.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.block_cancelled = True
                if not f.swallow_cancel:
                    raise
        if index == f.raise_at:
            assert f.error is not None
            self.raised = f.error
            raise f.error

    async def _cleanup(self, *, cancelled: bool = False) -> None:
        """The engine's cleanup. ``cancelled``: it runs while a cancellation passes through the engine, so
        it does not raise (raising there would replace the cancellation: ES-6)."""
        self.cleanup_started = True
        try:
            for _ in range(self.faults.cleanup_turns):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cleanup_interrupted = True
            raise
        self.cleanup_done = True
        if self.faults.cleanup_raises and not cancelled:
            self.raised = CleanupError("engine cleanup failed")
            raise self.raised

    async def _generate(self) -> AsyncGenerator[object, None]:
        cancelled = False
        try:
            for index in range(len(self.items) + 1):
                await self._before(index)
                if index == len(self.items):
                    return
                item = self.items[index]
                self.yielded.append(item)
                yield item
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            await self._cleanup(cancelled=cancelled)


def tokens_of(items: Sequence[object]) -> list[str]:
    """The ``str`` items of ``items`` before the first contract violation (ES-2, ES-3)."""
    out: list[str] = []
    completion_seen = False
    for item in items:
        if completion_seen:
            break
        if isinstance(item, str):
            out.append(item)
        elif is_completion(item):
            completion_seen = True
        else:
            break
    return out


class _ProbeIterator:
    """The hand-written iterator form of a probe: ``__anext__`` and ``aclose()`` without a generator."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self._index = 0
        self._done = False

    def __aiter__(self) -> _ProbeIterator:
        return self

    async def __anext__(self) -> object:
        probe = self._probe
        if self._done:
            raise StopAsyncIteration
        index = self._index
        try:
            await probe._before(index)  # pyright: ignore[reportPrivateUsage]  # the probe's own helper
        except asyncio.CancelledError:
            raise  # the stream stays usable, like a connection whose read was interrupted
        except BaseException:
            self._done = True  # an engine error ends the stream; its cleanup runs at aclose()
            raise
        if index == len(probe.items):
            self._done = True
            await probe._cleanup()  # pyright: ignore[reportPrivateUsage]  # the probe's own helper
            raise StopAsyncIteration
        self._index += 1
        item = probe.items[index]
        probe.yielded.append(item)
        return item

    async def aclose(self) -> None:
        probe = self._probe
        probe.aclose_calls += 1
        if probe.cleanup_started:
            return
        self._done = True
        await probe._cleanup()  # pyright: ignore[reportPrivateUsage]  # the probe's own helper


# ---------------------------------------------------------------------------------------------- after
class AfterProbe:
    """An ``after`` callback that records each call and what the world looked like at that moment."""

    def __init__(self, *, error: BaseException | None = None, block: bool = False, turns: int = 0) -> None:
        self.error = error
        self.block = block
        self.turns = turns
        self.calls: list[object] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.case: Case | None = None
        self.consumer_loop_ended_at_call: list[bool] = []
        self.waiters_done_at_call: list[bool] = []
        self.lock_held_at_call: list[bool] = []

    async def __call__(self, completion: Any) -> None:
        self.calls.append(completion)
        case = self.case
        if case is not None:
            self.consumer_loop_ended_at_call.append(case.outcome.loop_ended)
            self.waiters_done_at_call.append(any(w.done() for w in case.waiters))
            if case.lock is not None:
                self.lock_held_at_call.append(case.lock.locked())
        self.entered.set()
        for _ in range(self.turns):
            await asyncio.sleep(0)
        if self.block:
            await self.release.wait()
        if self.error is not None:
            raise self.error


# ---------------------------------------------------------------------------------------------- consumers
ConsumerKind = Literal["full", "break", "aclose", "raise", "drop", "stop_in_body"]


@dataclass(frozen=True)
class Consumer:
    """A scripted consumer of a manager.

    * ``full``: read every token.
    * ``break``: ``break`` after ``at`` tokens (the iterator is then dropped, as ``async for`` does).
    * ``aclose``: take the iterator, read ``at`` tokens with ``anext``, then ``await it.aclose()``.
    * ``raise``: the loop body raises :class:`ConsumerError` after ``at`` tokens.
    * ``drop``: take the iterator and drop it without a step.
    * ``stop_in_body``: ``await manager.aclose()`` in the loop body after ``at`` tokens, then go on looping.

    ``body_turns`` event-loop turns are spent in the loop body for each token; ``pause_at`` tokens in, the
    body sets :attr:`Case.paused` and waits for :attr:`Case.resume` (to place a stop from another task while
    the consumer is busy in its own body). With ``step_tasks``, every step (``anext()``) runs in a task of
    its own, as ``asyncio.wait_for(anext(it), timeout)`` does on Python 3.10 and 3.11.
    """

    kind: ConsumerKind = "full"
    at: int = 0
    body_turns: int = 0
    pause_at: int | None = None
    step_tasks: bool = False


READ_ALL: Final = Consumer()
"""The default consumer: reads every token."""


@dataclass
class Outcome:
    """What a consumer saw."""

    tokens: list[str] = field(default_factory=list[str])
    error: BaseException | None = None
    cancelled: bool = False
    loop_ended: bool = False
    ran: bool = False


# ---------------------------------------------------------------------------------------------- the case
class RecordingManager(StreamManager[Any]):
    """The reference manager, recording every assignment of its state: the exact transitions (SM-27)."""

    __slots__ = ("assigned",)
    assigned: list[StreamState]

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_state":
            try:
                history = self.assigned
            except AttributeError:
                history = []
                object.__setattr__(self, "assigned", history)
            history.append(value)
        super().__setattr__(name, value)

    def check_transitions(self) -> None:
        """Each assignment is a move of STATE_TRANSITIONS, and nothing is assigned after a terminal state."""
        for before, after in pairwise(self.assigned):
            if after not in STATE_TRANSITIONS[before]:
                raise HarnessFailure(
                    f"SM-27: state set {before.value} -> {after.value}; all: {self.assigned}"
                )


class StateWatcher:
    """Samples ``manager.state`` on every event-loop turn until it is terminal (SM-27)."""

    def __init__(self, manager: StreamManager[Any]) -> None:
        self.manager = manager
        self.seen: list[StreamState] = [manager.state]
        self.task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            state = self.manager.state
            if state is not self.seen[-1]:
                self.seen.append(state)
            if state.is_terminal:
                return
            await asyncio.sleep(0)

    def check(self) -> None:
        """Every sampled change is allowed (a sampler may miss an intermediate state, so this is the
        transitive closure of STATE_TRANSITIONS), and the last state is terminal."""
        for before, after in pairwise(self.seen):
            if not is_allowed_transition(before, after):
                raise HarnessFailure(f"SM-27: state moved {before.value} -> {after.value}; seen {self.seen}")
        if not self.seen[-1].is_terminal:
            raise HarnessFailure(f"SM-27: the state never became terminal; seen {self.seen}")


class Case:
    """One manager over one probe, run by a scripted consumer, with waiters; :meth:`verify` checks it."""

    def __init__(
        self,
        items: Sequence[object],
        *,
        kind: EngineKind = "gen",
        faults: Faults | None = None,
        lock: CountingLock | bool = False,
        after: AfterProbe | None = None,
        role: object = "assistant",
        watch: bool = True,
        manager_factory: Callable[..., Any] | None = None,
        bound: float = BOUND,
        on_request: Callable[[Probe, int], None] | None = None,
        isolated: bool = True,
    ) -> None:
        self.isolated = isolated
        """Whether this case runs alone: then :meth:`verify` checks that no task at all was left running;
        cases that run concurrently check their own tasks, and the test checks the rest once they ended."""
        self.baseline = _other_tasks() if isolated else set[asyncio.Task[Any]]()
        self.lock: CountingLock | None = CountingLock() if lock is True else (lock or None)
        self.owns_lock = lock is True
        """Whether the lock is this case's own (a shared one is checked by the test, across its cases)."""
        self.probe = Probe(items, kind=kind, faults=faults, lock=self.lock, on_request=on_request)
        self.after = after
        self.role = role
        factory: Callable[..., Any] = manager_factory if manager_factory is not None else StreamManager
        self.manager: StreamManager[Any] = factory(self.probe.stream, role, after=after, lock=self.lock)
        if after is not None:
            after.case = self
        self.outcome = Outcome()
        self.consumer_task: asyncio.Task[None] | None = None
        self.driven_by_consumer = False
        self.waiters: list[asyncio.Task[object]] = []
        self.waiter_kinds: list[WaiterKind] = []
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()
        self.stops: list[asyncio.Task[None]] = []
        self.yielded_at_stop: int | None = None
        self.handed: list[str] | None = None
        """With a consumer whose steps run in tasks of their own: the tokens those tasks received."""
        self.watcher = StateWatcher(self.manager) if watch else None
        self.bound = bound

    def __repr__(self) -> str:
        return f"Case({self.probe!r}, lock={self.lock is not None}, after={self.after is not None})"

    # -- driving it
    def start(self, consumer: Consumer = READ_ALL) -> None:
        """Run ``consumer`` in a new task, :attr:`task` (its outcome lands in :attr:`outcome`)."""
        self.driven_by_consumer = True
        self.consumer_task = asyncio.get_running_loop().create_task(self._consume(consumer))

    @property
    def task(self) -> asyncio.Task[None]:
        """The consumer's task (after :meth:`start` or :meth:`run`)."""
        assert self.consumer_task is not None, "no consumer was started"
        return self.consumer_task

    async def consume(self, consumer: Consumer = READ_ALL) -> Outcome:
        """Run ``consumer`` in the current task (bounded by the caller)."""
        self.driven_by_consumer = True
        await self._consume(consumer)
        return self.outcome

    async def _consume(self, spec: Consumer) -> None:
        out = self.outcome
        out.ran = True
        manager = self.manager
        try:
            if spec.kind == "drop":
                aiter(manager)  # taken and dropped at once, never stepped
            elif spec.kind == "aclose":
                it = aiter(manager)
                for _ in range(spec.at):
                    self._asking()
                    try:
                        token = await anext(it)
                    except StopAsyncIteration:
                        break  # the stream ended first
                    self._received(token)
                assert isinstance(it, AsyncGenerator)
                await it.aclose()
            else:
                if spec.step_tasks:
                    self.handed = []
                steps = _StepTasks(aiter(manager), self.handed) if self.handed is not None else None
                try:
                    self._asking()
                    async for token in steps if steps is not None else manager:
                        self._received(token)
                        n = len(out.tokens)
                        for _ in range(spec.body_turns):
                            await asyncio.sleep(0)
                        if spec.pause_at == n:
                            self.paused.set()
                            await self.resume.wait()
                        if n == spec.at:
                            if spec.kind == "break":
                                break
                            if spec.kind == "raise":
                                raise ConsumerError(f"consumer body failed after {n} tokens")
                            if spec.kind == "stop_in_body":
                                await manager.aclose()
                        self._asking()  # nothing runs between here and the loop's next anext()
                finally:
                    if steps is not None:
                        # As `async with aclosing(it)` does. Needed here: a cancellation that lands between
                        # two step tasks never enters the iterator, and this frame (kept by the exception's
                        # traceback) keeps the iterator from being finalized.
                        await steps.aclose()
        except asyncio.CancelledError as exc:
            out.cancelled = True
            out.error = exc
            out.loop_ended = True
            raise
        except BaseException as exc:
            out.error = exc
        out.loop_ended = True

    def _asking(self) -> None:
        self.probe.timeline.append(("asking", len(self.outcome.tokens)))

    def _received(self, token: str) -> None:
        self.probe.timeline.append(("received", len(self.outcome.tokens)))
        self.outcome.tokens.append(token)

    async def run(self, consumer: Consumer = READ_ALL, *, waiters: int = 0, when: When = "before") -> None:
        """Start ``consumer`` in its own task with ``waiters`` waiter tasks that call in ``when``:

        * ``before``: right after the consumer's task was created (it claims the stream first; the waiters
          call before it received anything),
        * ``during``: once the consumer holds its first token, in its loop body (or once it ended, if it
          never gets one),
        * ``after``: once the consumer's task has ended.
        """
        if when == "during" and consumer.pause_at is None:
            consumer = replace(consumer, pause_at=1)
        self.start(consumer)
        task = self.task
        if when == "before":
            self.spawn_waiters(waiters)
        elif when == "during":
            paused = asyncio.ensure_future(self.paused.wait())
            await asyncio.wait([paused, task], timeout=self.bound, return_when=asyncio.FIRST_COMPLETED)
            paused.cancel()
            self.spawn_waiters(waiters)
            await asyncio.sleep(0)  # the waiters call and block before the consumer goes on
            self.resume.set()
        else:
            await asyncio.wait([task], timeout=self.bound)
            self.spawn_waiters(waiters)

    def spawn_waiters(self, n: int) -> list[asyncio.Task[object]]:
        """Start ``n`` tasks calling ``completion()``, ``message()`` and ``await`` in turn."""
        loop = asyncio.get_running_loop()
        new: list[asyncio.Task[object]] = []
        for i in range(n):
            kind = WAITER_KINDS[(len(self.waiters) + i) % len(WAITER_KINDS)]
            self.waiter_kinds.append(kind)
            new.append(loop.create_task(result_of(self.manager, kind)))
        self.waiters.extend(new)
        return new

    async def stop(self) -> None:
        """``await manager.aclose()``, noting how many items the engine had yielded when the first stop
        was asked for (nothing yielded later may reach anyone: SM-24, SM-28)."""
        if self.yielded_at_stop is None:
            self.yielded_at_stop = len(self.probe.yielded)
        await self.manager.aclose()

    def stop_soon(self, *, turns: int = 0) -> None:
        """:meth:`stop` in a new task (appended to :attr:`stops`), after ``turns`` event-loop turns."""

        async def stop() -> None:
            for _ in range(turns):
                await asyncio.sleep(0)
            await self.stop()

        self.stops.append(asyncio.get_running_loop().create_task(stop()))

    async def finish(self) -> None:
        """Wait (bounded) for the consumer and the stop tasks to end."""
        tasks: list[asyncio.Task[Any]] = [*self.stops]
        if self.consumer_task is not None:
            tasks.append(self.consumer_task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.bound)
            if pending:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=BOUND)
                raise HarnessFailure(f"did not end within {self.bound}s: {pending}; {self!r}")
        for stop in self.stops:
            if stop.cancelled() or stop.exception() is not None:
                raise HarnessFailure(f"SM-22: aclose() did not return cleanly: {stop!r}")

    # -- the invariant checker
    async def verify(
        self,
        state: StreamState,
        *,
        error: BaseException | type[BaseException] | None = None,
        consumer_error: BaseException | type[BaseException] | None = None,
        requirement_id: str | None = None,
        tokens: Sequence[str] | None = None,
        completion: object = None,
        after_calls: int | None = None,
    ) -> None:
        """Check every invariant of the case that has run (see the module docstring).

        :param state: the final state the manager must be in.
        :param error: for ``failed``, what every result call raises: an exception object (checked by
            identity: SM-8, SM-13) or a type (a ``StreamProtocolError``; then ``requirement_id`` too).
        :param consumer_error: what the consumer's loop must have raised (default: ``error`` for ``failed``,
            nothing otherwise, ``CancelledError`` if the consumer was cancelled).
        :param tokens: the tokens the consumer must have seen (default: what the engine yielded).
        :param completion: for ``completed``, the completion object results must be (default: the engine's
            own, else a built one with the exact text and the role, checked by value).
        :param after_calls: how often ``after`` was called (default: once when it ran to its end or raised,
            else never); 1 for a consumer cancelled while ``after`` ran.
        """
        try:
            await self._verify(state, error, consumer_error, requirement_id, tokens, completion, after_calls)
        finally:
            for waiter in self.waiters:  # retrieved, so a failure is reported once, not again by the loop
                if waiter.done() and not waiter.cancelled():
                    waiter.exception()

    async def _verify(
        self,
        state: StreamState,
        error: BaseException | type[BaseException] | None,
        consumer_error: BaseException | type[BaseException] | None,
        requirement_id: str | None,
        tokens: Sequence[str] | None,
        completion: object,
        after_calls: int | None,
    ) -> None:
        await self.finish()
        m, probe, out = self.manager, self.probe, self.outcome
        where = f"\n  case: {self!r}\n  consumer: {out!r}\n  timeline: {probe.timeline}"

        def fail(message: str) -> HarnessFailure:
            return HarnessFailure(message + where)

        # Every waiter resolves within the bound (SM-8, SM-10: nothing hangs) ...
        await self._wait_waiters(fail)
        # ... and the stream ends (an abandoned iterator ends it when the loop finalizes it, a few turns on).
        if self.watcher is not None:
            await asyncio.wait([self.watcher.task], timeout=self.bound)
        for _ in range(SETTLE_TURNS):
            if m.state.is_terminal:
                break
            await asyncio.sleep(0)
        if m.state is not state:
            raise fail(f"final state is {m.state.value}, expected {state.value}")
        # ... and so do callers that come late.
        self.spawn_waiters(len(WAITER_KINDS))
        await self._wait_waiters(fail)
        if self.watcher is not None:
            self.watcher.check()

        # What the consumer saw: the engine's tokens, unchanged and in order, nothing lost or invented.
        yielded = probe.yielded
        if state is StreamState.STOPPED and self.yielded_at_stop is not None:
            yielded = yielded[: self.yielded_at_stop]  # a non-conforming engine may yield after the stop
        sent = tokens_of(yielded)
        seen = out.tokens if self.driven_by_consumer else sent
        if self.handed is not None:
            # The manager handed these to the consumer's step tasks; a consumer cancelled as a step ended
            # may not have read the last one (its own loss, as with wait_for), and nothing else.
            if not (out.tokens == self.handed or (out.cancelled and out.tokens == self.handed[:-1])):
                raise fail(f"the steps received {self.handed!r}, the consumer saw {out.tokens!r}")
            seen = self.handed
        if self.driven_by_consumer:
            if seen != sent:
                raise fail(f"SM-1/SM-2/SM-28: the engine yielded {sent!r}, the consumer got {seen!r}")
            for got, original in zip(seen, probe.yielded, strict=False):
                if got is not original:
                    raise fail(f"SM-1: token {got!r} is not the object the engine yielded")
            self._check_no_read_ahead(fail)
        if tokens is not None and seen != list(tokens):
            raise fail(f"the tokens seen are {seen!r}, expected {list(tokens)!r}")

        # The result every waiter (and a late caller) gets.
        expected_consumer: BaseException | type[BaseException] | None
        if state is StreamState.COMPLETED:
            result = await asyncio.wait_for(m.completion(), BOUND)
            if completion is not None:
                if result is not completion:
                    raise fail(f"SM-4: completion() returned {result!r}, expected the object {completion!r}")
            elif probe.completion is not None:
                if result is not probe.completion:
                    raise fail("SM-4: completion() is not the engine's own completion object")
            else:
                text = getattr(result.message, "text", None)
                if text != "".join(seen) or result.message.role != self.role:
                    raise fail(f"SM-4: built completion {result!r}, expected text {''.join(seen)!r}")
                if result.prompt_tokens is not None or result.completion_tokens is not None:
                    raise fail("SM-4: a built completion's token counts must be None")
            for kind, waiter in zip(self.waiter_kinds, self.waiters, strict=True):
                raised = _raised(waiter)
                if raised is not None:
                    raise fail(f"SM-7: a {kind} waiter raised {raised!r} from a completed stream")
                want = result if kind == "completion" else result.message
                if waiter.result() is not want:
                    raise fail(f"SM-5/SM-7: a {kind} waiter got {waiter.result()!r}, expected {want!r}")
            expected_consumer = None
        else:
            published = _raised(await _settle(m.completion()))
            if published is None:
                raise fail(f"a {state.value} stream's completion() returned instead of raising")
            if state is StreamState.FAILED:
                if isinstance(error, BaseException):
                    if published is not error:
                        raise fail(f"SM-8/SM-13: results raise {published!r}, expected the object {error!r}")
                elif error is not None and not isinstance(published, error):
                    raise fail(f"results raise {published!r}, expected a {error.__name__}")
                if requirement_id is not None:
                    if not isinstance(published, StreamProtocolError):
                        raise fail(f"SM-9: results raise {published!r}, expected StreamProtocolError")
                    if published.requirement_id != requirement_id:
                        raise fail(f"SM-9: StreamProtocolError names {published.requirement_id}")
                expected_consumer = published
            else:
                if not isinstance(published, StreamIncompleteError):
                    raise fail(f"SM-10: results raise {published!r}, expected StreamIncompleteError")
                if published.reason is not state:
                    raise fail(f"SM-28: reason {published.reason} but final state {state.value}")
                if published.text != "".join(seen):
                    raise fail(f"SM-28: error text {published.text!r}, consumer saw {''.join(seen)!r}")
                expected_consumer = None
            for waiter in self.waiters:
                raised_by = _raised(waiter)
                if raised_by is not published:
                    raise fail(f"SM-7/SM-8: a waiter got {raised_by!r}, expected the published {published!r}")

        # The consumer's own ending.
        if self.driven_by_consumer:
            want_consumer = consumer_error if consumer_error is not None else expected_consumer
            if out.cancelled:
                if consumer_error is not asyncio.CancelledError:
                    raise fail("the consumer was cancelled unexpectedly")
            elif isinstance(want_consumer, BaseException):
                if out.error is not want_consumer:
                    raise fail(
                        f"SM-8: the consumer raised {out.error!r}, expected the object {want_consumer!r}"
                    )
            elif want_consumer is not None:
                if not isinstance(out.error, want_consumer):
                    raise fail(f"the consumer raised {out.error!r}, expected a {want_consumer.__name__}")
            elif out.error is not None:
                raise fail(f"the consumer's loop raised {out.error!r}, expected a clean end")
            if not out.loop_ended:
                raise fail("the consumer's loop did not end")

        # The lock: free, and released exactly as often as it was acquired, at most once (SM-12).
        if self.lock is not None:
            lock = self.lock
            if self.owns_lock and (lock.locked() or lock.releases != lock.acquires or lock.acquires > 1):
                raise fail(
                    f"SM-12: lock locked={lock.locked()} acquired {lock.acquires}x released {lock.releases}x"
                )
            if probe.lock_held and not all(probe.lock_held):
                raise fail(f"SM-12: lock not held at every engine request: {probe.lock_held}")

        # after: exactly once with the completion on success (or when it raised), never otherwise (SM-13).
        if self.after is not None:
            after_ran = state is StreamState.COMPLETED or (
                state is StreamState.FAILED and self.after.error is not None and error is self.after.error
            )
            if len(self.after.calls) != (after_calls if after_calls is not None else int(after_ran)):
                raise fail(f"SM-13: after called {len(self.after.calls)} times in a {state.value} stream")
            if self.after.calls:
                if any(self.after.waiters_done_at_call) or any(self.after.consumer_loop_ended_at_call):
                    raise fail("SM-13: after ran after the consumer's loop ended or a waiter was released")
                if state is StreamState.COMPLETED and self.after.calls[0] is not await m.completion():
                    raise fail("SM-13: after was not called with the final completion")

        # The engine stream was closed (ES-5 via SM-10/SM-11/SM-24/SM-25).
        if not probe.closed():
            raise fail("SM-10: the engine stream was not closed (its cleanup did not run)")

        if isinstance(m, RecordingManager):
            m.check_transitions()
        if self.isolated:
            await assert_no_tasks_left(self.baseline, where)
        else:
            own = [*self.stops, *self.waiters, *([self.consumer_task] if self.consumer_task else [])]
            if self.watcher is not None:
                own.append(self.watcher.task)
            if not all(task.done() for task in own):
                raise fail("SM-15: a task of this case is still running")

    async def _wait_waiters(self, fail: Callable[[str], HarnessFailure]) -> None:
        if not self.waiters:
            return
        _, pending = await asyncio.wait(self.waiters, timeout=self.bound)
        if pending:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=BOUND)
            raise fail(
                f"SM-8/SM-10: {len(pending)} of {len(self.waiters)} waiters did not resolve in {self.bound}s"
            )

    def _check_no_read_ahead(self, fail: Callable[[str], HarnessFailure]) -> None:
        """SM-2: after token k reached the consumer, the engine is asked for item k+1 only once the consumer
        asked for its next token (and never if it did not)."""
        position = {event: i for i, event in enumerate(self.probe.timeline)}
        for k in range(len(self.outcome.tokens)):
            request = position.get(("request", k + 1))
            if request is None:
                continue
            asking = position.get(("asking", k + 1))
            if asking is None or request < asking or request < position[("received", k)]:
                raise fail(f"SM-2: item {k + 1} was requested before the consumer asked for it")


class _StepTasks:
    """Each step of ``it`` in a task of its own, as ``asyncio.wait_for(anext(it), t)`` does on 3.10/3.11."""

    def __init__(self, it: AsyncIterator[str], handed: list[str]) -> None:
        self._it = it
        self._handed = handed

    def __aiter__(self) -> _StepTasks:
        return self

    async def __anext__(self) -> str:
        step = asyncio.ensure_future(anext(self._it))
        step.add_done_callback(self._record)  # the token the manager handed out, even if we never read it
        return await step

    def _record(self, step: asyncio.Future[str]) -> None:
        if not step.cancelled() and step.exception() is None:
            self._handed.append(step.result())

    async def aclose(self) -> None:
        aclose: Callable[[], Awaitable[None]] = getattr(self._it, "aclose")  # noqa: B009  # typed here
        await aclose()


async def result_of(manager: StreamManager[Any], kind: WaiterKind) -> object:
    """``completion()``, ``message()`` or ``await`` of ``manager``."""
    if kind == "completion":
        return await manager.completion()
    if kind == "message":
        return await manager.message()
    return await manager


async def _settle(awaitable: Any) -> asyncio.Task[object]:
    """Run ``awaitable`` to its end (bounded) in a task and return the task, result or exception retrieved."""
    task: asyncio.Task[object] = asyncio.ensure_future(awaitable)
    await asyncio.wait([task], timeout=BOUND)
    if not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=BOUND)
        raise HarnessFailure(f"{awaitable!r} did not resolve within {BOUND}s")
    return task


def _raised(task: asyncio.Task[object]) -> BaseException | None:
    """The exception a finished task raised (its CancelledError if cancelled), or None."""
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


def _other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def assert_no_tasks_left(baseline: set[asyncio.Task[Any]], where: str = "") -> None:
    """SM-15: no task started since ``baseline`` is still pending, after at most :data:`SETTLE_TURNS`
    event-loop turns for finalizers (an abandoned iterator is closed by a task the loop creates)."""
    left: set[asyncio.Task[Any]] = set()
    for _ in range(SETTLE_TURNS):
        left = {t for t in _other_tasks() - baseline if not t.done()}
        if not left:
            return
        await asyncio.sleep(0)
    raise HarnessFailure(f"SM-15: tasks left running: {left}{where}")


# ---------------------------------------------------------------------------------------------- the loop
class LoopGuard:
    """Records everything the event loop reports to its exception handler (a destroyed pending task, an
    exception never retrieved, an error in an async generator's finalizer) and runs the loop in debug mode."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.records: list[dict[str, Any]] = []
        self._previous = loop.get_exception_handler()
        self._debug = loop.get_debug()
        self._generators_before: weakref.WeakSet[object] = weakref.WeakSet(_started_generators(loop))
        loop.set_debug(True)
        loop.set_exception_handler(self._record)

    def _record(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.records.append(context)

    def check(self) -> None:
        if self.records:
            lines = [f"{c.get('message')}: {c.get('exception')!r}" for c in self.records]
            self.records.clear()
            raise HarnessFailure("the event loop reported:\n  " + "\n  ".join(lines))

    async def finish(self, baseline: set[asyncio.Task[Any]]) -> None:
        """End of a test: let finalizers run, collect garbage (so that a lost exception or a destroyed
        pending task is reported now), then check that nothing was reported, nothing is left running and
        every async generator the test started has finished (SM-15: no unclosed async generator)."""
        await assert_no_tasks_left(baseline)
        gc.collect()
        for _ in range(3):
            await asyncio.sleep(0)
        try:
            self.check()
            unclosed = [
                g
                for g in _started_generators(self.loop)
                if g not in self._generators_before and getattr(g, "ag_frame", None) is not None
            ]
            if unclosed:
                raise HarnessFailure(f"SM-15: async generators started and never finished: {unclosed}")
        finally:
            self.loop.set_exception_handler(self._previous)
            self.loop.set_debug(self._debug)


def _started_generators(loop: asyncio.AbstractEventLoop) -> list[object]:
    """The async generators the loop tracks: those iterated at least once and not yet garbage-collected
    (asyncio's first-iteration hook adds them to a private weak set, which is all there is to read)."""
    tracked: Iterable[object] = getattr(loop, "_asyncgens", ())
    return list(tracked)


# ---------------------------------------------------------------------------------------------- helpers
async def turns(n: int) -> None:
    """Let ``n`` event-loop turns pass: to *place* an action in an interleaving, never to wait for one."""
    for _ in range(n):
        await asyncio.sleep(0)


async def within_turns(condition: Callable[[], bool], what: str, turns: int = SETTLE_TURNS) -> None:
    """Let at most ``turns`` event-loop turns pass until ``condition()`` holds, else fail naming ``what``:
    for what the event loop does by itself a few turns on (finalizing an abandoned generator, say)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    if not condition():
        raise HarnessFailure(f"{what}: still not so after {turns} event-loop turns")


def state_of(manager: StreamManager[Any]) -> StreamState:
    """``manager.state``, read through a call so that type checkers do not narrow it between reads."""
    return manager.state


async def drain_into(stream: Any, tokens: list[str]) -> None:
    """``async for`` over ``stream``, appending each token to ``tokens`` (which outlives an exception)."""
    async for token in stream:
        tokens.append(token)


def other_tasks() -> set[asyncio.Task[Any]]:
    """The tasks other than the current one (a baseline for :func:`assert_no_tasks_left`)."""
    return _other_tasks()


def async_iter_of(items: Sequence[object]) -> AsyncIterator[object]:
    """A bare async generator over ``items`` (no probe), for tests that need only a stream."""

    async def gen() -> AsyncGenerator[object, None]:
        for item in items:
            yield item

    return gen()
