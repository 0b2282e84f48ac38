"""Explore a stream manager's life as a hypothesis state machine: the orders of events no one wrote down.

:func:`explore_manager` draws an engine script (tokens, whitespace included; optionally a completion, an
engine error or a bytes item at some position, a :class:`~lmstream.conformance.scripted.Block`), builds a
manager over it with the factory (optionally with a lock and an ``after`` that records or raises), and lets
hypothesis interleave *actions*: the consumer steps one token, breaks out of its loop or closes its iterator;
a waiter starts in another task (``completion()``, ``message()``, ``await``); the consumer's task is
cancelled; ``aclose()`` is called from another task (only when the manager offers it); the blocked engine
is released; the event loop turns. Every example runs in a fresh event loop of its own, and every wait is
bounded, in event-loop turns first (a task still pending when nothing is left to run will never finish) and
by the clock (``timeout``) as a backstop.

**What is checked** (each violation names its requirement):

* after every action: everything :func:`~lmstream.conformance.validate_manager` checks live (SM-1, SM-5,
  SM-7, SM-16, SM-22, SM-27 ``state`` moves only along STATE_TRANSITIONS, SM-28 the incomplete text is the
  consumer's tokens); the consumer's tokens are a prefix of the engine's, unchanged (SM-1); the waiters that
  have an outcome agree: the same object, or the same error (SM-7, SM-8); the lock is taken at most once and
  never released more often than taken (SM-12); ``after`` runs at most once (SM-13); a consumer step begun
  after ``aclose()`` returned yields nothing and raises nothing (SM-24);
* at the end, before the engine is released: ``aclose()`` has returned (SM-22, SM-24), and if the stream
  has ended (the consumer's loop ended in any way, or a stop returned) every waiter has its outcome
  (SM-8, SM-10, SM-11, SM-24);
* then, the engine released and the story finished (the consumer reads on, one more ``completion()``):
  everything resolves; all outcomes agree, the consumer's error included; a loop that ended normally saw
  every token and its result is the engine's completion or the exact text (SM-1, SM-4, SM-8, SM-9, SM-13);
  ``after`` ran exactly when the stream completed (SM-13); the lock is free (SM-12); the engine stream is
  closed (SM-10, SM-11 or SM-24 after an early end, SM-15 otherwise); no task is left and nothing warned
  (SM-15); no task ended cancelled that nobody cancelled, and a cancelled consumer ended cancelled (SM-26,
  SM-11); an error nothing in the script explains is the manager's (SM-14 once a completion was read,
  SM-9 for a bytes item, SM-8 for the engine's error, else SM-1).

On a violation hypothesis shrinks the example, and :class:`ExplorationFailure` is raised with the minimal
example as paste-able text: a :func:`replay_manager` call (the engine script and the actions) and what
happened at each action. :func:`replay_manager` replays a script without hypothesis.

hypothesis is imported only by :func:`explore_manager`; without it that function raises a one-line
``RuntimeError`` saying how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, TypeVar

from lmstream.spec import StreamIncompleteError, StreamProtocolError, describe_item

from ._capture import Sink, capture
from .checks._manager_support import ROLE, CountingLock, ScriptCompletion, ScriptMessage
from .describe import describe_exception, describe_items
from .scripted import Block, Fail, StreamProbe, scripted_stream
from .targets import manager_target
from .validate_manager import ValidatedStoppableManager, validate_manager

__all__ = [
    "ACTIONS",
    "AfterError",
    "EngineError",
    "ExplorationFailure",
    "Explored",
    "explore_manager",
    "replay_manager",
]

T = TypeVar("T")
After = Literal["record", "raise"] | None

ACTIONS: Final = (
    "step",
    "break",
    "aclose",
    "cancel",
    "completion",
    "message",
    "await",
    "stop",
    "release",
    "settle",
)
"""What an action may be: ``name`` or ``name+N`` (then N event-loop turns).

``step``: the consumer asks for one token; ``break``: it leaves its loop (dropping the iterator); ``aclose``:
it closes its iterator; ``cancel``: its task is cancelled; ``completion``, ``message``, ``await``: a waiter
starts in a task of its own; ``stop``: ``aclose()`` of the manager in a task of its own; ``release``: the
engine's Block is released; ``settle``: the loop runs until nothing is left to run."""

_HINT: Final = "pip install 'lmstream-conformance[explore]' (or hypothesis>=6.100)"


class EngineError(Exception):
    """The error a scripted engine raises (a ``Fail`` step)."""


class AfterError(Exception):
    """The error an ``after`` callback raises when the example says it should."""


class ExplorationFailure(AssertionError):
    """A manager broke a requirement in an explored (or replayed) example.

    ``str()`` is the whole report: the requirement, what was observed, a paste-able :func:`replay_manager`
    call and what happened at each action.

    :ivar requirement_id: the broken requirement, e.g. ``"SM-10"`` (``"target"`` when calling the factory
        itself raised).
    :ivar observed: what was observed, in one line.
    :ivar reproduction: the paste-able replay (Python source).
    :ivar trace: one line per action.
    """

    def __init__(self, requirement_id: str, observed: str, reproduction: str, trace: Sequence[str]) -> None:
        self.requirement_id = requirement_id
        self.observed = observed
        self.reproduction = reproduction
        self.trace = tuple(trace)
        lines = [
            f"{requirement_id}: {observed}",
            "reproduce (paste into a script or a test):",
            *(f"    {line}" for line in reproduction.splitlines()),
            "what happened:",
            *(f"    {line}" for line in self.trace),
        ]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[object, ...]:
        return (ExplorationFailure, (self.requirement_id, self.observed, self.reproduction, self.trace))


@dataclass(frozen=True)
class Explored:
    """What :func:`explore_manager` did when it found nothing: how many examples, how long."""

    factory: str
    examples: int
    seconds: float


# ---------------------------------------------------------------------------------------------- the loop
def _loop_idle(loop: asyncio.AbstractEventLoop) -> bool | None:
    """Whether nothing is ready to run and no timer is pending (``None``: this loop cannot tell)."""
    ready = getattr(loop, "_ready", None)  # asyncio's own loops; others (uvloop) fall back to the clock
    scheduled = getattr(loop, "_scheduled", None)
    if ready is None or scheduled is None:
        return None
    return not ready and not any(not handle.cancelled() for handle in scheduled)


def _next_timer(loop: asyncio.AbstractEventLoop) -> float | None:
    ready = getattr(loop, "_ready", None)
    scheduled = getattr(loop, "_scheduled", None)
    if ready or not scheduled:
        return None
    live = [handle.when() for handle in scheduled if not handle.cancelled()]
    return min(live) if live else None


async def _until_done(tasks: Sequence[asyncio.Future[Any]], deadline: float) -> bool:
    """Let the loop run until every task is done; give up when nothing is left to run (twice in a row: the
    tasks can never finish) or at ``deadline``. Returns whether all are done."""
    loop = asyncio.get_running_loop()
    quiet = 0
    while True:
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return True
        now = loop.time()
        if now >= deadline:
            return False
        idle = _loop_idle(loop)
        timer = _next_timer(loop)
        if idle is None or timer is not None:
            until = deadline if timer is None else min(timer, deadline)
            await asyncio.wait(pending, timeout=max(0.0, until - now))
            quiet = 0
            continue
        quiet = quiet + 1 if idle else 0
        if quiet >= 2:
            return False
        await asyncio.sleep(0)


async def _settle(deadline: float) -> None:
    """Let the loop run until nothing is left to run (or ``deadline``)."""
    loop = asyncio.get_running_loop()
    marker = loop.create_future()  # never done: run until quiet
    try:
        await _until_done([asyncio.ensure_future(marker)], deadline)
    finally:
        marker.cancel()


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------- actors
class _Consumer:
    """The application's loop, one command at a time: ``step`` (one token), ``drain`` (to the end),
    ``break`` (drop the iterator), ``aclose`` (close it). The iterator is kept in an attribute, never in a
    frame's locals, so that leaving the loop in any way drops it, as an ``async for`` does."""

    def __init__(self, proxy: Any, stopped: Callable[[], bool]) -> None:
        self.proxy = proxy
        self.stopped = stopped
        self.commands: asyncio.Queue[str] = asyncio.Queue()
        self.tokens: list[object] = []
        self.claimed = False
        self.refused: BaseException | None = None
        self.ended = False
        self.left: str | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.in_step = False
        self.after_stop: list[str] = []
        self._iterator: Any = None

    @property
    def over(self) -> bool:
        return self.ended or self.left is not None or self.error is not None or self.cancelled

    async def run(self) -> None:
        try:
            self._iterator = self.proxy.__aiter__()
        except Exception as exc:
            self.refused = exc
            return
        self.claimed = True
        try:
            while True:
                command = await self.commands.get()
                if command in ("break", "aclose"):
                    self.left = command
                    if command == "aclose":
                        await self._iterator.aclose()
                    return
                while True:
                    if await self._step() or command == "step":
                        break
                if self.ended:
                    return
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except Exception as exc:
            self.error = exc
        finally:
            self._iterator = None

    async def _step(self) -> bool:
        """One request; whether the loop is over."""
        after_stop = self.stopped()
        self.in_step = True
        try:
            token = await self._iterator.__anext__()
        except StopAsyncIteration:
            self.ended = True
            return True
        except BaseException as exc:
            if after_stop and not isinstance(exc, asyncio.CancelledError):
                self.after_stop.append(f"it raised {describe_exception(exc)}")
            raise
        finally:
            self.in_step = False
        self.tokens.append(token)
        if after_stop:
            self.after_stop.append(f"it yielded {describe_item(token)}")
        return False


class _Waiter:
    """A task awaiting the result, with what it got.

    When nobody iterated the manager (a waiter drove the stream, SM-6), validate_manager() cannot see the
    tokens that waiter read, so a StreamIncompleteError it gets is marked ``unverified`` and its text is
    judged against the engine's tokens instead.
    """

    def __init__(self, proxy: Any, method: str, unread: Callable[[], bool], *, final: bool = False) -> None:
        self.proxy = proxy
        self.method = method
        self.unread = unread
        self.final = final
        self.kind = ""
        self.value: object = None
        self.unverified = False
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            value = await _result(self.proxy, self.method)
        except StreamIncompleteError as exc:
            self.kind, self.value, self.unverified = "error", exc, self.unread()
            return
        except Exception as exc:
            self.kind, self.value = "error", exc
            return
        self.kind, self.value = "value", value

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def outcome(self) -> tuple[str, object] | None:
        """``("value", v)``, ``("error", e)``, ``("cancelled", None)``, or ``None`` while pending."""
        if self.task is None or not self.task.done():
            return None
        if self.task.cancelled():
            return ("cancelled", None)
        return (self.kind, self.value)


async def _result(proxy: Any, method: str) -> object:
    if method == "completion":
        return await proxy.completion()
    if method == "message":
        return await proxy.message()
    return await proxy


# ---------------------------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class _Setup:
    script: tuple[object, ...]
    lock: bool = False
    after: After = None
    pause: float | None = 0.0

    @property
    def tokens(self) -> list[str]:
        """The str tokens before the first fault: what a consumer may see."""
        found: list[str] = []
        for item in self.script:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, Fail) or not isinstance(item, (Block, ScriptCompletion)):
                break
        return found

    @property
    def fault(self) -> object:
        """The engine error object or the bytes item, if the script has one."""
        for item in self.script:
            if isinstance(item, Fail):
                return item.error
            if not isinstance(item, (str, Block, ScriptCompletion)):
                return item
        return None

    @property
    def completion(self) -> ScriptCompletion | None:
        return next((item for item in self.script if isinstance(item, ScriptCompletion)), None)


class _Violation(Exception):
    def __init__(self, requirement_id: str, observed: str) -> None:
        super().__init__(observed)
        self.requirement_id = requirement_id
        self.observed = observed


def _own_violation(error: object) -> _Violation | None:
    """A validate_manager() error (an SM- requirement) is a violation; a manager's ES- error is not."""
    if isinstance(error, StreamProtocolError) and error.requirement_id.startswith("SM-"):
        return _Violation(error.requirement_id, error.detail)
    return None


class _Run:
    """One example: a fresh event loop, a manager over a scripted engine, the actors, and the checks."""

    def __init__(self, factory: object, setup: _Setup, *, name: str, timeout: float) -> None:
        self.setup = setup
        self.name = name
        self.timeout = timeout
        self.actions: list[str] = []
        self.trace: list[str] = []
        self.failed = False
        self.closed = False
        self.sink = Sink()
        self._capture = contextlib.ExitStack()
        self._capture.enter_context(capture(self.sink))
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self.sink.loop_exception)
        self.probe = StreamProbe()
        self.engine = scripted_stream(setup.script, self.probe, pause=setup.pause)
        self.lock = CountingLock() if setup.lock else None
        self.after_calls: list[object] = []
        self.after_error = AfterError("after failed on purpose") if setup.after == "raise" else None
        self.waiters: list[_Waiter] = []
        self.stops: list[asyncio.Task[None]] = []
        self.consumer: _Consumer | None = None
        self.consumer_task: asyncio.Task[None] | None = None
        self.cancelled_consumer = False
        self.released = False
        self.terminal_sent = False
        self.proxy: Any = None
        self.stoppable = False
        try:
            self.loop.run_until_complete(self._build(factory))
        except BaseException:
            self.close()
            raise

    async def _build(self, factory: object) -> None:
        after = self._after if self.setup.after is not None else None
        try:
            manager = manager_target(factory, name=self.name)(self.engine, ROLE, after=after, lock=self.lock)
        except Exception as exc:
            self.fail("target", f"calling the factory raised {describe_exception(exc)}")
        self.proxy = validate_manager(manager)
        self.stoppable = isinstance(self.proxy, ValidatedStoppableManager)

    async def _after(self, completion: object) -> None:
        self.after_calls.append(completion)
        if self.after_error is not None:
            raise self.after_error

    # ------------------------------------------------------------------ what hypothesis may do
    @property
    def consumer_open(self) -> bool:
        return not self.terminal_sent and not (self.consumer_task is not None and self.consumer_task.done())

    @property
    def can_cancel(self) -> bool:
        return (
            self.consumer_task is not None and not self.consumer_task.done() and not self.cancelled_consumer
        )

    @property
    def can_release(self) -> bool:
        return not self.released and any(isinstance(item, Block) for item in self.setup.script)

    def apply(self, action: str) -> None:
        """Do one action (see ``ACTIONS``), let the loop turn as it says, then check the invariants."""
        name, _, turns = action.partition("+")
        if name not in ACTIONS or (turns and not turns.isdigit()):
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}, or name+N")
        self.actions.append(action)
        try:
            self._do(name)
            if name == "settle":
                self.loop.run_until_complete(_settle(self.loop.time() + self.timeout))
            elif turns:
                self.loop.run_until_complete(_turns(int(turns)))
            self.trace.append(f"{len(self.actions)}. {action}: {self._describe()}")
            self._check_now()
        except _Violation as violation:
            self.fail(violation.requirement_id, violation.observed)
        except BaseException:
            self.failed = True  # not a violation (a bug, or an interrupt): the end of the story is not told
            raise

    def _do(self, name: str) -> None:
        if name in ("step", "break", "aclose"):
            consumer = self._consumer()
            consumer.commands.put_nowait(name)
            self.terminal_sent = self.terminal_sent or name != "step"
        elif name == "cancel" and self.consumer_task is not None:
            self.cancelled_consumer = self.consumer_task.cancel() or self.cancelled_consumer
        elif name in ("completion", "message", "await"):
            self._spawn_waiter(name)
        elif name == "stop" and self.stoppable:
            self.stops.append(
                self.loop.create_task(self.proxy.aclose(), name=f"explore stop {len(self.stops)}")
            )
        elif name == "release":
            self.released = True
            self.probe.release()

    def _spawn_waiter(self, method: str, *, final: bool = False) -> _Waiter:
        waiter = _Waiter(self.proxy, method, self._unread, final=final)
        label = "the final completion()" if final else f"{method}() waiter {len(self.waiters)}"
        waiter.task = self.loop.create_task(waiter.run(), name=f"explore: {label}")
        self.waiters.append(waiter)
        return waiter

    def _unread(self) -> bool:
        """Whether no consumer has iterated the manager (so a waiter drove the stream, SM-6)."""
        return self.consumer is None or not self.consumer.claimed

    def _consumer(self) -> _Consumer:
        if self.consumer is None:
            self.consumer = _Consumer(self.proxy, self._stopped)
            self.consumer_task = self.loop.create_task(self.consumer.run(), name="explore consumer")
        return self.consumer

    def _stopped(self) -> bool:
        return any(task.done() and not task.cancelled() and task.exception() is None for task in self.stops)

    def _describe(self) -> str:
        consumer = self.consumer
        seen = "no consumer" if consumer is None else f"consumer saw {describe_items(consumer.tokens)}"
        if consumer is not None and consumer.over:
            seen += f" and {self._how_consumer_ended()}"
        state = f"; state {self.proxy.state.value}" if self.stoppable else ""
        pending = sum(1 for w in self.waiters if not w.done)
        waiters = f"; {len(self.waiters)} waiter(s), {pending} pending" if self.waiters else ""
        return f"{seen}{state}{waiters}; engine {self._engine_state()}"

    def _engine_closed(self) -> bool:
        return getattr(self.engine, "ag_frame", None) is None  # an async generator's frame: None once over

    def _engine_state(self) -> str:
        probe = self.probe
        if probe.blocked:
            return f"blocked after {len(probe.yielded)} item(s)"
        if self._engine_closed():
            return f"closed after {len(probe.yielded)} item(s)"
        return f"open, {len(probe.yielded)} item(s) read" if probe.requests else "not read"

    def _how_consumer_ended(self) -> str:
        consumer = self.consumer
        assert consumer is not None
        if consumer.refused is not None:
            return f"could not iterate ({type(consumer.refused).__name__})"
        if consumer.cancelled:
            return "was cancelled"
        if consumer.error is not None:
            return f"its loop raised {describe_exception(consumer.error)}"
        if consumer.left is not None:
            return "broke out" if consumer.left == "break" else "closed its iterator"
        return "its loop ended normally" if consumer.ended else "is still reading"

    # ------------------------------------------------------------------ invariants
    def _check_now(self) -> None:
        """The invariants that hold after every action."""
        if self.stoppable:
            try:
                self.proxy.state  # noqa: B018 - sampling state is the check (SM-27)
            except StreamProtocolError as exc:
                raise _Violation(exc.requirement_id, exc.detail) from None
        consumer = self.consumer
        if consumer is not None:
            for error in (consumer.error, consumer.refused):
                found = _own_violation(error)
                if found is not None:
                    raise found
            wanted = self.setup.tokens
            if consumer.tokens != wanted[: len(consumer.tokens)]:
                raise _Violation(
                    "SM-1",
                    f"the consumer received {describe_items(consumer.tokens)}, which is not the start of the "
                    f"engine's tokens {describe_items(wanted)}",
                )
            if consumer.after_stop:
                raise _Violation(
                    "SM-24",
                    f"a step of the consumer's loop begun after aclose() had returned did not end the loop: "
                    f"{consumer.after_stop[0]}",
                )
            self._explain(consumer.error, "the consumer's loop")
        for waiter in self.waiters:
            found = _own_violation(self._error_of(waiter))
            if found is not None:
                raise found
            self._explain(self._error_of(waiter), f"{waiter.method}()")
            if waiter.unverified and waiter.done:
                self._check_unread_incomplete(waiter.value)
        if self.lock is not None and (
            self.lock.acquisitions > 1 or self.lock.releases > self.lock.acquisitions
        ):
            raise _Violation(
                "SM-12",
                f"the lock was acquired {self.lock.acquisitions} time(s) and released {self.lock.releases} "
                "time(s)",
            )
        if len(self.after_calls) > 1:
            raise _Violation("SM-13", f"after was called {len(self.after_calls)} times")
        self._check_agreement(final=False)

    def _explain(self, error: BaseException | None, who: str) -> None:
        """An error must come from the script: the engine's fault, after's error, a stop or an early end.
        Anything else is the manager failing a stream it should have handled."""
        fault = self.setup.fault
        if error is None or error is fault or error is self.after_error:
            return
        if isinstance(error, StreamIncompleteError):
            return
        if fault is not None and not isinstance(fault, BaseException):  # a bytes item
            if isinstance(error, StreamProtocolError):
                return
            raise _Violation(
                "SM-9", f"the engine yielded a bytes item and {who} raised {describe_exception(error)}"
            )
        if isinstance(fault, BaseException) and self.probe.raised is fault:
            raise _Violation(
                "SM-8", f"the engine raised {fault!r}, but {who} raised {describe_exception(error)}"
            )
        consumer = self.consumer
        if consumer is not None and who == "the consumer's loop" and consumer.left == "aclose":
            raise _Violation("SM-10", f"closing the manager's iterator raised {describe_exception(error)}")
        if any(isinstance(item, ScriptCompletion) for item in self.probe.yielded):
            raise _Violation(
                "SM-14",
                f"{who} raised {describe_exception(error)} once the engine yielded its completion, a plain "
                "dataclass shaped like one: a manager accepts completions by shape",
            )
        raise _Violation(
            "SM-1", f"{who} raised {describe_exception(error)}, which nothing in the script explains"
        )

    def _check_unread_incomplete(self, error: object) -> None:
        """A stream a waiter drove and that was stopped: its text is some first tokens of the engine's."""
        assert isinstance(error, StreamIncompleteError)
        tokens = self.setup.tokens
        if not any(error.text == "".join(tokens[:k]) for k in range(len(tokens) + 1)):
            raise _Violation(
                "SM-28",
                f"StreamIncompleteError.text is {describe_item(error.text)}, which is no run of the engine's "
                f"first tokens {describe_items(tokens)}",
            )
        if self.stoppable and error.reason != self.proxy.state:
            raise _Violation(
                "SM-28", f"StreamIncompleteError.reason is {error.reason} but the state is {self.proxy.state}"
            )

    @staticmethod
    def _error_of(waiter: _Waiter) -> BaseException | None:
        outcome = waiter.outcome()
        error = outcome[1] if outcome is not None and outcome[0] == "error" else None
        return error if isinstance(error, BaseException) else None

    def _check_agreement(self, *, final: bool) -> None:
        """Every waiter with an outcome got the same result, or the same error (SM-7, SM-8, SM-10)."""
        done = [(w, w.outcome()) for w in self.waiters]
        outcomes = [(w, o) for w, o in done if o is not None]
        for waiter, (kind, _) in outcomes:
            if kind == "cancelled":
                raise _Violation(
                    "SM-26", f"waiter {waiter.method}() ended cancelled, though nobody cancelled its task"
                )
        values = [(w, v) for w, (k, v) in outcomes if k == "value"]
        errors = [(w, v) for w, (k, v) in outcomes if k == "error"]
        if values and errors:
            raise _Violation(
                "SM-7",
                f"{values[0][0].method}() returned {describe_item(values[0][1])} but "
                f"{errors[0][0].method}() raised {describe_item(errors[0][1])}",
            )
        completions = [v for w, v in values if w.method == "completion"]
        messages = [v for w, v in values if w.method != "completion"]
        if any(c is not completions[0] for c in completions) or any(m is not messages[0] for m in messages):
            raise _Violation("SM-7", "the waiters received different objects")
        if completions and messages and getattr(completions[0], "message", None) is not messages[0]:
            raise _Violation("SM-5", "message() / await did not return completion().message")
        if errors:
            self._check_errors([e for _, e in errors])
        if final:
            self._check_final(completions[0] if completions else None, errors[0][1] if errors else None)

    def _check_errors(self, errors: list[object]) -> None:
        first = errors[0]
        for other in errors[1:]:
            same = other is first or (
                isinstance(first, StreamIncompleteError)
                and isinstance(other, StreamIncompleteError)
                and (first.text, first.reason) == (other.text, other.reason)
            )
            if not same:
                raise _Violation(
                    "SM-8",
                    f"the waiters got different errors: {describe_item(first)} and {describe_item(other)}",
                )
        consumer = self.consumer
        loop_error = consumer.error if consumer is not None else None
        if (
            loop_error is not None
            and loop_error is not first
            and not (
                isinstance(first, StreamIncompleteError) and isinstance(loop_error, StreamIncompleteError)
            )
        ):
            raise _Violation(
                "SM-8",
                f"the consumer's loop raised {describe_item(loop_error)} but the waiters got "
                f"{describe_item(first)}",
            )
        for error, kind in ((self.setup.fault, "engine"), (self.after_error, "after")):
            if isinstance(error, BaseException) and isinstance(first, type(error)) and first is not error:
                rid = "SM-8" if kind == "engine" else "SM-13"
                raise _Violation(rid, f"the waiters got a copy of the {kind}'s error, not the very object")

    def _check_final(self, completion: object, error: object) -> None:
        """What must hold once everything has resolved (SM-1, SM-4, SM-8, SM-9, SM-13)."""
        consumer = self.consumer
        setup = self.setup
        normal_end = consumer is not None and consumer.ended and not self.stops
        if normal_end and consumer is not None:
            if setup.fault is not None:
                rid = "SM-8" if isinstance(setup.fault, BaseException) else "SM-9"
                raise _Violation(
                    rid, f"the engine's fault {describe_item(setup.fault)} did not reach the consumer"
                )
            if consumer.tokens != setup.tokens:
                raise _Violation(
                    "SM-1",
                    f"the loop ended normally after {describe_items(consumer.tokens)}; the engine yielded "
                    f"{describe_items(setup.tokens)}",
                )
            if self.after_error is not None:
                raise _Violation("SM-13", "after raised, but the consumer's loop ended normally")
            self._check_completion(completion, error)
        if self.after_calls:
            called = self.after_calls[0]
            if self.after_error is None and completion is not called:
                raise _Violation(
                    "SM-13",
                    f"after was called with {describe_item(called)}, but the result is "
                    f"{describe_item(completion if error is None else error)}",
                )
            if self.after_error is not None and error is not self.after_error:
                raise _Violation(
                    "SM-13", f"after raised, but the result is {describe_item(error or completion)}"
                )
        elif setup.after is not None and error is None and completion is not None:
            raise _Violation("SM-13", "the stream completed, but after was never called")

    def _check_completion(self, completion: object, error: object) -> None:
        if error is not None or completion is None:
            raise _Violation("SM-8", f"the loop ended normally, but the result raised {describe_item(error)}")
        own = self.setup.completion
        if own is not None:
            if completion is not own:
                raise _Violation(
                    "SM-4", f"the engine's completion was replaced by {describe_item(completion)}"
                )
            return
        message = getattr(completion, "message", None)
        text = getattr(message, "text", None)
        wanted = "".join(self.setup.tokens)
        role = getattr(message, "role", None)
        if text != wanted or (
            role != ROLE and getattr(role, "value", None) != ROLE
        ):  # kani's ChatRole is fine
            raise _Violation(
                "SM-4",
                f"the built message has role {role!r} and text {text!r}; expected role {ROLE!r} and the "
                f"exact text of the tokens, {wanted!r}",
            )

    # ------------------------------------------------------------------ the end
    def _ended(self) -> str | None:
        """How the stream has ended, as things stand, or ``None`` while it may still be going on."""
        consumer = self.consumer
        if consumer is not None and consumer.claimed and consumer.over:
            return f"the consumer {self._how_consumer_ended()}"
        if self._stopped():
            return "aclose() returned"
        if self._engine_closed() and self.probe.requests:
            return "the engine stream finished"
        return None

    def finish(self) -> None:
        """End the story (see the module docstring) and close the loop; raises on a violation."""
        try:
            if not self.failed:
                try:
                    self._finish()
                except _Violation as violation:
                    if not self.trace or not self.trace[-1].startswith("end:"):
                        self.trace.append(f"end: {self._describe()}")
                    self.fail(violation.requirement_id, violation.observed)
        finally:
            self.close()
        if not self.failed and self.sink.lines:
            self.fail("SM-15", f"something warned or was reported by asyncio: {'; '.join(self.sink.lines)}")

    def _finish(self) -> None:
        deadline = self.loop.time() + self.timeout
        if self.stops and not self._run(_until_done(self.stops, deadline)):
            state = f"; the engine was {self._engine_state()}"
            raise _Violation("SM-22", f"aclose() had not returned when nothing was left to run{state}")
        ended = self._ended()
        if ended is not None:  # the results must be there now, with the engine as it is (blocked or not)
            self._spawn_waiter("completion", final=True)
            consumer = self.consumer
            pending = self._waiter_tasks()
            if consumer is not None and consumer.in_step and self.consumer_task is not None:
                pending.append(self.consumer_task)  # a stop must end a step blocked in the engine (SM-24)
            if not self._run(_until_done(pending, deadline)):
                raise _Violation(
                    self._hang_id(), f"{ended}, but {self._stuck()} still waited with nothing left to run"
                )
        self.probe.release()
        if self.consumer is not None and self.consumer_task is not None and not self.consumer_task.done():
            self.consumer.commands.put_nowait("drain")
        if not any(w.final for w in self.waiters):
            self._spawn_waiter("completion", final=True)
        everything = self._waiter_tasks() + list(self.stops)
        if self.consumer_task is not None:
            everything.append(self.consumer_task)
        if not self._run(_until_done(everything, self.loop.time() + self.timeout)):
            how = self._ended() or "the stream was read to its end"
            raise _Violation(
                self._hang_id(), f"the engine released, {how}, but {self._stuck()} never finished"
            )
        self.trace.append(f"end: the engine released, the story finished: {self._describe()}")
        self._check_now()
        self._check_agreement(final=True)
        self._check_consumer_task()
        if self.lock is not None and (self.lock.locked() or self.lock.releases != self.lock.acquisitions):
            raise _Violation(
                "SM-12",
                f"at the end the lock is {'held' if self.lock.locked() else 'free'}, acquired "
                f"{self.lock.acquisitions} and released {self.lock.releases} time(s)",
            )
        if not self._engine_closed():
            rid = self._hang_id() if self._left_early() else "SM-15"
            raise _Violation(rid, f"at the end the engine stream was not closed ({self._engine_state()})")
        self._run(_settle(self.loop.time() + self.timeout))
        left = [t.get_name() for t in asyncio.all_tasks(self.loop) if not t.done()]
        if left:
            raise _Violation("SM-15", f"task(s) left running at the end: {', '.join(left)}")

    def _waiter_tasks(self) -> list[asyncio.Task[Any]]:
        return [w.task for w in self.waiters if w.task is not None]

    def _stuck(self) -> str:
        stuck = [
            ("the final completion()" if w.final else f"{w.method}()") for w in self.waiters if not w.done
        ]
        if self.consumer is not None and self.consumer_task is not None and not self.consumer_task.done():
            stuck.append("the consumer's step" if self.consumer.in_step else "the consumer")
        stuck += [f"aclose() {n + 1}" for n, t in enumerate(self.stops) if not t.done()]
        return ", ".join(stuck) or "nothing"

    def _left_early(self) -> bool:
        consumer = self.consumer
        return self._stopped() or (
            consumer is not None and consumer.claimed and (consumer.cancelled or consumer.left is not None)
        )

    def _hang_id(self) -> str:
        """The requirement a hang (or an unclosed engine) breaks, from how the stream ended."""
        consumer = self.consumer
        if self._stopped():
            return "SM-24"
        if consumer is None or not consumer.claimed or not consumer.over:
            return "SM-7"  # a waiter drove the stream (SM-6); the others must get the same result
        if consumer.cancelled:
            return "SM-11"
        if consumer.left is not None:
            return "SM-10"
        error = consumer.error
        if error is not None and error is self.after_error:
            return "SM-13"
        if isinstance(error, StreamProtocolError):
            return "SM-9"
        return "SM-8" if error is not None else "SM-7"

    def _check_consumer_task(self) -> None:
        task, consumer = self.consumer_task, self.consumer
        if task is None or consumer is None:
            return
        if task.cancelled() and not self.cancelled_consumer:
            raise _Violation("SM-26", "the consumer's task ended cancelled, though nobody cancelled it")
        if self.cancelled_consumer and not task.cancelled():
            raise _Violation(
                "SM-11", f"the consumer's task was cancelled, but it {self._how_consumer_ended()}"
            )

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def fail(self, requirement_id: str, observed: str) -> NoReturn:
        """Raise the :class:`ExplorationFailure` of this example (only the first violation counts)."""
        self.failed = True
        raise ExplorationFailure(requirement_id, observed, self.reproduction(), self.trace)

    def close(self) -> None:
        """Cancel what is left, close the loop and stop capturing (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.probe.release()
            leftovers = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                self.loop.run_until_complete(asyncio.wait(leftovers, timeout=self.timeout))
            for task in leftovers:  # retrieve what they raised, so asyncio does not complain
                if task.done() and not task.cancelled():
                    task.exception()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            self._capture.close()

    # ------------------------------------------------------------------ reproduction
    def reproduction(self) -> str:
        """A paste-able :func:`replay_manager` call for this example, up to now."""
        imports, expression = _reference(self.name)
        setup = self.setup
        script = ", ".join(_render(item) for item in setup.script)
        return "\n".join(
            [
                *imports,
                "from lmstream.conformance import Block, Fail",
                "from lmstream.conformance.checks._manager_support import ScriptCompletion, ScriptMessage",
                "from lmstream.conformance.explore import EngineError, replay_manager",
                "",
                "replay_manager(",
                f"    {expression},",
                f"    script=[{script}],",
                f"    actions={self.actions!r},",
                f"    lock={setup.lock!r},",
                f"    after={setup.after!r},",
                f"    pause={setup.pause!r},",
                ")",
            ]
        )


def _reference(name: str) -> tuple[list[str], str]:
    module, sep, attribute = name.partition(":")
    if sep and module and attribute and "<" not in attribute:
        return [f"from {module} import {attribute.split('.', 1)[0]}"], attribute
    return [], f"FACTORY  # {name}"


def _render(item: object) -> str:
    if isinstance(item, Fail):
        return f"Fail({item.error!r})"
    return repr(item)


# ---------------------------------------------------------------------------------------------- replay
def replay_manager(
    factory: object,
    script: Sequence[object],
    actions: Sequence[str],
    *,
    lock: bool = False,
    after: After = None,
    pause: float | None = 0.0,
    timeout: float = 1.0,
    name: str | None = None,
) -> list[str]:
    """Run one example by hand: ``factory`` over an engine running ``script``, then ``actions`` in order
    (see ``ACTIONS``), then the end of the story, with every check of :func:`explore_manager`.

    Call it from synchronous code (it runs its own event loop).

    :returns: what happened, one line per action.
    :raises ExplorationFailure: at the first violation.
    :raises ValueError: for an unknown action.
    """
    _require_sync()
    label = name or manager_target(factory).name
    run = _Run(factory, _Setup(tuple(script), lock, after, pause), name=label, timeout=timeout)
    try:
        for action in actions:
            run.apply(action)
    except BaseException:
        run.close()
        raise
    run.finish()
    return run.trace


# ---------------------------------------------------------------------------------------------- explore
def explore_manager(
    factory: object,
    *,
    max_examples: int = 200,
    seed: int | None = None,
    steps: int = 12,
    timeout: float = 1.0,
    name: str | None = None,
) -> Explored:
    """Explore ``factory``'s managers with a hypothesis state machine (see the module docstring).

    :param factory: a :class:`~lmstream.spec.ManagerFactory`, e.g. ``lmstream.reference.StreamManager``.
    :param max_examples: how many examples hypothesis runs (shrinking a failure runs more).
    :param seed: a seed, for a reproducible exploration (default: hypothesis's own randomness).
    :param steps: the most actions in one example.
    :param timeout: the backstop, in seconds, of every wait in an example (hangs are usually detected at
        once: a task still pending when nothing is left to run).
    :returns: how many examples ran and how long it took, when no example broke a requirement.
    :raises ExplorationFailure: with the minimal failing example, as paste-able text.
    :raises RuntimeError: when hypothesis is not installed, or when called from a running event loop.
    """
    if importlib.util.find_spec("hypothesis") is None:
        raise RuntimeError(f"explore_manager() needs hypothesis, which is not installed: {_HINT}")
    _require_sync()
    label = name or manager_target(factory).name
    started = time.perf_counter()
    counter = [0]

    def make_run(setup: _Setup) -> _Run:
        counter[0] += 1
        return _Run(factory, setup, name=label, timeout=timeout)

    try:
        _run_machine(make_run, max_examples=max_examples, seed=seed, steps=steps)
    except ExplorationFailure as failure:  # the minimal example's, without hypothesis's notes
        raise ExplorationFailure(
            failure.requirement_id, failure.observed, failure.reproduction, failure.trace
        ) from None
    return Explored(label, counter[0], time.perf_counter() - started)


def _require_sync() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "explore_manager() and replay_manager() run event loops of their own: call them from synchronous code"
    )


def _run_machine(
    make_run: Callable[[_Setup], _Run], *, max_examples: int, seed: int | None, steps: int
) -> None:
    """Build the state machine over ``make_run`` and let hypothesis run it (hypothesis imported here)."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        initialize,
        precondition,
        rule,
        run_state_machine_as_test,
    )

    turns = st.integers(min_value=0, max_value=2)
    token = st.text(alphabet=" \n\tab", max_size=3)

    @st.composite
    def setups(draw: st.DrawFn) -> _Setup:
        tokens = draw(st.lists(token, max_size=5))
        items: list[object] = list(tokens)
        ending = draw(st.sampled_from(["none", "completion", "completion without text"]))
        if ending == "completion":
            items.append(ScriptCompletion(ScriptMessage(ROLE, "".join(tokens)), 7, len(tokens)))
        elif ending == "completion without text":
            items.append(ScriptCompletion(ScriptMessage(ROLE, None)))
        fault = draw(st.sampled_from([None, "raise", "bytes"]))
        if fault is not None:
            at = draw(st.integers(min_value=0, max_value=len(tokens)))
            items.insert(
                at, Fail(EngineError(f"engine failed after {at} token(s)")) if fault == "raise" else b"\xff"
            )
        if draw(st.booleans()):
            items.insert(draw(st.integers(min_value=0, max_value=len(items))), Block())
        after: After = draw(st.sampled_from([None, "record", "raise"]))
        return _Setup(tuple(items), draw(st.booleans()), after, draw(st.sampled_from([0.0, None])))

    def consumer_open(machine: ManagerLife) -> bool:
        return machine.run is not None and machine.run.consumer_open

    def can_cancel(machine: ManagerLife) -> bool:
        return machine.run is not None and machine.run.can_cancel

    def can_wait(machine: ManagerLife) -> bool:
        return machine.run is not None and len(machine.run.waiters) < 3

    def can_stop(machine: ManagerLife) -> bool:
        return machine.run is not None and machine.run.stoppable and len(machine.run.stops) < 2

    def can_release(machine: ManagerLife) -> bool:
        return machine.run is not None and machine.run.can_release

    class ManagerLife(RuleBasedStateMachine):
        """One manager's life; the rules are the actions of ``ACTIONS``."""

        def __init__(self) -> None:
            super().__init__()
            self.run: _Run | None = None

        def act(self, name: str, count: int) -> None:
            assert self.run is not None
            self.run.apply(f"{name}+{count}" if count else name)

        @initialize(setup=setups())
        def begin(self, setup: _Setup) -> None:
            self.run = make_run(setup)

        @precondition(consumer_open)
        @rule(count=turns)
        def step(self, count: int) -> None:
            self.act("step", count)

        @precondition(consumer_open)
        @rule(how=st.sampled_from(["break", "aclose"]), count=turns)
        def leave(self, how: str, count: int) -> None:
            self.act(how, count)

        @precondition(can_cancel)
        @rule(count=turns)
        def cancel(self, count: int) -> None:
            self.act("cancel", count)

        @precondition(can_wait)
        @rule(method=st.sampled_from(["completion", "message", "await"]), count=turns)
        def wait(self, method: str, count: int) -> None:
            self.act(method, count)

        @precondition(can_stop)
        @rule(count=turns)
        def stop(self, count: int) -> None:
            self.act("stop", count)

        @precondition(can_release)
        @rule(count=turns)
        def release(self, count: int) -> None:
            self.act("release", count)

        @rule()
        def settle(self) -> None:
            self.act("settle", 0)

        def teardown(self) -> None:
            if self.run is not None:
                self.run.finish()

    if seed is not None:
        hypothesis.seed(seed)(ManagerLife)
    run_state_machine_as_test(
        ManagerLife,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
                HealthCheck.large_base_example,
            ],
            report_multiple_bugs=False,
            verbosity=Verbosity.quiet,
        ),
    )
