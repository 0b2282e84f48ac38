"""One explored example from its start to its end (:mod:`lmstream.conformance.explore`).

A :class:`Run` is the example's :class:`~._explore_world.World` with an event loop of its own: it builds the
factory's manager over the scripted engine (validated by
:func:`~lmstream.conformance.validate_manager`), applies the actions one by one (:meth:`Run.apply`, each
followed by the invariants of :func:`~._explore_checks.check_now`), then finishes the story
(:meth:`Run.finish`: the results that must be there, the engine released, everything resolved and judged)
and closes the loop. Every wait is bounded (:mod:`._explore_loop`). Warnings and what asyncio reports are
captured, and are a violation (SM-15) at the end.

The first violation is raised as an :class:`~lmstream.conformance.explore.ExplorationFailure` with the
reproduction and the trace so far; after it nothing more is judged (:meth:`Run.finish` only closes the run).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

from ._capture import Sink, capture
from ._explore_actors import Consumer, Waiter
from ._explore_checks import Violation, check_finished, check_now, hang_id
from ._explore_loop import settle, turns, until_done
from ._explore_report import ExplorationFailure, render_reproduction
from ._explore_world import Setup, World
from .checks._manager_support import ROLE
from .describe import describe_exception
from .targets import manager_target
from .validate_manager import ValidatedStoppableManager, validate_manager

__all__ = ["Run"]

T = TypeVar("T")


class Run(World):
    """One example: a fresh event loop, a manager over a scripted engine, the actors, and the checks.

    :raises ExplorationFailure: from the constructor when calling the factory raises.
    """

    def __init__(self, factory: object, setup: Setup, *, name: str, timeout: float) -> None:
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
        super().__init__(setup)
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

    # ------------------------------------------------------------------ the actions
    def apply(self, action: str) -> None:
        """Do one action (``name`` or ``name+N``, a name of ``ACTIONS``: the caller has checked it), let the
        loop turn as it says, then check the invariants."""
        name, _, count = action.partition("+")
        self.actions.append(action)
        try:
            self._do(name)
            if name == "settle":
                self.loop.run_until_complete(settle(self.loop.time() + self.timeout))
            elif count:
                self.loop.run_until_complete(turns(int(count)))
            self.trace.append(f"{len(self.actions)}. {action}: {self.describe()}")
            check_now(self)
        except Violation as violation:
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

    def _spawn_waiter(self, method: str, *, final: bool = False) -> Waiter:
        waiter = Waiter(self.proxy, method, self.unread, final=final)
        label = "the final completion()" if final else f"{method}() waiter {len(self.waiters)}"
        waiter.task = self.loop.create_task(waiter.run(), name=f"explore: {label}")
        self.waiters.append(waiter)
        return waiter

    def _consumer(self) -> Consumer:
        if self.consumer is None:
            self.consumer = Consumer(self.proxy, self.stopped)
            self.consumer_task = self.loop.create_task(self.consumer.run(), name="explore consumer")
        return self.consumer

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        """End the story (see the module docstring) and close the loop; raises on a violation."""
        try:
            if not self.failed:
                try:
                    self._finish()
                except Violation as violation:
                    if not self.trace or not self.trace[-1].startswith("end:"):
                        self.trace.append(f"end: {self.describe()}")
                    self.fail(violation.requirement_id, violation.observed)
        finally:
            self.close()
        if not self.failed and self.sink.lines:
            self.fail("SM-15", f"something warned or was reported by asyncio: {'; '.join(self.sink.lines)}")

    def _finish(self) -> None:
        deadline = self.loop.time() + self.timeout
        if self.stops and not self._run(until_done(self.stops, deadline)):
            state = f"; the engine was {self.engine_state()}"
            raise Violation("SM-22", f"aclose() had not returned when nothing was left to run{state}")
        ended = self.ended()
        if ended is not None:  # the results must be there now, with the engine as it is (blocked or not)
            self._spawn_waiter("completion", final=True)
            consumer = self.consumer
            pending = self.waiter_tasks()
            if consumer is not None and consumer.in_step and self.consumer_task is not None:
                pending.append(self.consumer_task)  # a stop must end a step blocked in the engine (SM-24)
            if not self._run(until_done(pending, deadline)):
                raise Violation(
                    hang_id(self), f"{ended}, but {self.stuck()} still waited with nothing left to run"
                )
        self.probe.release()
        if self.consumer is not None and self.consumer_task is not None and not self.consumer_task.done():
            self.consumer.commands.put_nowait("drain")
        if not any(w.final for w in self.waiters):
            self._spawn_waiter("completion", final=True)
        everything = self.waiter_tasks() + list(self.stops)
        if self.consumer_task is not None:
            everything.append(self.consumer_task)
        if not self._run(until_done(everything, self.loop.time() + self.timeout)):
            how = self.ended() or "the stream was read to its end"
            raise Violation(hang_id(self), f"the engine released, {how}, but {self.stuck()} never finished")
        self.trace.append(f"end: the engine released, the story finished: {self.describe()}")
        check_finished(self)
        self._run(settle(self.loop.time() + self.timeout))
        left = [t.get_name() for t in asyncio.all_tasks(self.loop) if not t.done()]
        if left:
            raise Violation("SM-15", f"task(s) left running at the end: {', '.join(left)}")

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

    def reproduction(self) -> str:
        """A paste-able :func:`~lmstream.conformance.explore.replay_manager` call for this example, up to
        now."""
        return render_reproduction(self.name, self.setup, self.actions)
