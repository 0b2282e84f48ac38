"""A stream manager's life as a hypothesis state machine: :class:`ManagerMachine`, which you subclass.

::

    from hypothesis.stateful import rule
    from lmstream.conformance.stateful import ManagerMachine

    class MyManagerMachine(ManagerMachine):
        factory = MyManager          # a ManagerFactory: MyManager(stream_iter, role, *, after=, lock=)

    TestMyManager = MyManagerMachine.TestCase   # collected by pytest (or unittest)

Each example draws an engine script (``begin``: tokens, whitespace included; how it ends; an engine error
or a ``bytes`` item at some position; a :class:`~lmstream.conformance.Block` somewhere), builds a manager
over it with ``factory`` (with a lock or not, an ``after`` that records or raises, or none), and lets
hypothesis interleave the rules: the consumer steps one token (``step``), breaks out of its loop or closes
its iterator (``leave``); its task is cancelled (``cancel``); a waiter starts in a task of its own
(``wait``: ``completion()``, ``message()``, ``await``); ``aclose()`` is called from another task (``stop``,
when the manager offers it); the blocked engine is released (``release``); the loop runs until nothing is
left to run (``settle``). Every rule then lets the loop turn ``turns`` times.

Every example runs in an event loop of its own, created with the machine and closed by ``teardown()``, and
every wait is bounded: a task still pending when the loop has nothing left to run is stuck (seen at once,
through the loop's selector), and ``timeout`` is the backstop.

**What is checked** (each violation is an :class:`~lmstream.conformance.explore.ExplorationFailure` naming
its requirement):

* after every step (the invariant ``keeps_the_contract``): everything
  :func:`~lmstream.conformance.validate_manager` checks live (SM-1, SM-5, SM-7, SM-16, SM-22, SM-27
  ``state`` moves only along STATE_TRANSITIONS, SM-28 the incomplete text is the consumer's tokens); the
  consumer's tokens are a prefix of the engine's, unchanged (SM-1); the waiters that have an outcome agree:
  the same object, or the same error (SM-7, SM-8); the lock is taken at most once and never released more
  often than taken (SM-12); ``after`` runs at most once (SM-13); a consumer step begun after ``aclose()``
  returned yields nothing and raises nothing (SM-24);
* at the end (``teardown()``), before the engine is released: ``aclose()`` has returned (SM-22, SM-24), and
  if the stream has ended (the consumer's loop ended in any way, or a stop returned) every waiter has its
  outcome (SM-8, SM-10, SM-11, SM-24);
* then, the engine released and the story finished (the consumer reads on, one more ``completion()``):
  everything resolves; all outcomes agree, the consumer's error included; a loop that ended normally saw
  every token and its result is the engine's completion or the exact text (SM-1, SM-4, SM-8, SM-9, SM-13);
  ``after`` ran exactly when the stream completed (SM-13); the lock is free (SM-12); the engine stream is
  closed (SM-10, SM-11 or SM-24 after an early end, SM-15 otherwise); no task is left and nothing warned
  (SM-15); no task ended cancelled that nobody cancelled, and a cancelled consumer ended cancelled (SM-26,
  SM-11); an error nothing in the script explains is the manager's (SM-14 once a completion was read,
  SM-9 for a bytes item, SM-8 for the engine's error, else SM-1).

**Your own rules and invariants** use the public attributes: :attr:`ManagerMachine.manager` (the manager,
behind :func:`~lmstream.conformance.validate_manager`), :attr:`~ManagerMachine.probe` (the engine's
:class:`~lmstream.conformance.StreamProbe`), :attr:`~ManagerMachine.tokens` (what the consumer received),
:meth:`~ManagerMachine.run` (await something on the example's loop, bounded), :meth:`~ManagerMachine.spawn`
(start a task there; it must be done by the end) and :meth:`~ManagerMachine.fail` (report a violation).
Settings go on the test case, as for any hypothesis state machine:
``MyManagerMachine.TestCase.settings = settings(max_examples=50)``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, Literal, NoReturn, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ._capture import Sink, capture
from ._explore_actors import Consumer, Waiter
from ._explore_checks import Violation, check_finished, check_now, hang_id
from ._explore_world import After, Ending, Fault, Setup, World, build_script
from ._isolation import require_sync
from ._quiet import quiet_loop
from .checks._manager_support import ROLE
from .describe import describe_exception
from .explore import ExplorationFailure
from .scripted import StreamProbe
from .targets import manager_target
from .validate_manager import ValidatedStoppableManager, validate_manager

__all__ = ["ManagerMachine"]

T = TypeVar("T")

_TURNS = st.integers(min_value=0, max_value=2)
_TOKENS = st.lists(st.text(alphabet=" \n\tab", max_size=3), max_size=5)


def _world_where(test: Callable[[World], bool]) -> Callable[[Any], bool]:
    """A precondition on the example's world (false before ``begin``)."""

    def holds(machine: Any) -> bool:
        world: World | None = machine._world
        return world is not None and not machine._closed and test(world)

    return holds


class ManagerMachine(RuleBasedStateMachine):
    """One manager's life, in rules hypothesis interleaves (see the module docstring).

    :cvar factory: the :class:`~lmstream.spec.ManagerFactory` under test, e.g. a manager class; read from
        the class, so a plain function works too.
    :cvar timeout: the backstop, in seconds, of every wait.
    :cvar name: the factory's name in reports (default: ``module:attribute``).
    """

    factory: ClassVar[object] = None
    timeout: ClassVar[float] = 1.0
    name: ClassVar[str | None] = None

    def __init__(self) -> None:
        require_sync("explore_manager() and ManagerMachine")
        super().__init__()
        self.trace: list[str] = []
        """One line per step: what the consumer saw, the state, the waiters, the engine."""
        self.sink = Sink()
        self.loop, self._quiet = quiet_loop()
        self.loop.set_exception_handler(self.sink.loop_exception)
        self._world: World | None = None
        self._spawned: list[asyncio.Task[Any]] = []
        self._closed = False
        self._outer = sys.exc_info()[1]  # an error handled around the whole run is not this example's

    # ------------------------------------------------------------------ for your own rules
    @property
    def manager(self) -> Any:
        """The manager under test, behind :func:`~lmstream.conformance.validate_manager`."""
        return self._require().proxy

    @property
    def probe(self) -> StreamProbe:
        """The scripted engine's probe: what it yielded, whether it is blocked, closed, ..."""
        return self._require().probe

    @property
    def tokens(self) -> list[object]:
        """The tokens the consumer received so far (empty while no consumer has stepped)."""
        consumer = self._require().consumer
        return [] if consumer is None else list(consumer.tokens)

    def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on the example's loop, bounded by ``timeout`` (then ``TimeoutError``)."""
        self._require()
        return self._run(asyncio.wait_for(awaitable, self.timeout))

    def spawn(self, coro: Coroutine[Any, Any, T], name: str = "explore: a task of a rule") -> asyncio.Task[T]:
        """Start ``coro`` as a task on the example's loop; at the end it must be done (SM-15). Let it run
        with a rule's ``turns``, ``settle`` or :meth:`run`."""
        self._require()
        task = self.loop.create_task(coro, name=name)
        self._spawned.append(task)
        return task

    def fail(self, requirement_id: str, observed: str) -> NoReturn:
        """Report a violation of ``requirement_id``: close the example and raise
        :class:`~lmstream.conformance.explore.ExplorationFailure`, with the trace so far. Call it from a rule
        or an invariant, not from a coroutine on the example's loop."""
        self._close()
        raise ExplorationFailure(requirement_id, observed, trace=self.trace)

    # ------------------------------------------------------------------ the rules
    @initialize(
        tokens=_TOKENS,
        ending=st.sampled_from(("none", "completion", "completion without text")),
        fault=st.sampled_from((None, "raise", "bytes")),
        fault_at=st.integers(min_value=0, max_value=5),
        block_at=st.none() | st.integers(min_value=0, max_value=7),
        lock=st.booleans(),
        after=st.sampled_from((None, "record", "raise")),
        pause=st.sampled_from((0.0, None)),
    )
    def begin(
        self,
        tokens: list[str],
        ending: Ending = "none",
        fault: Fault = None,
        fault_at: int = 0,
        block_at: int | None = None,
        lock: bool = False,
        after: After = None,
        pause: float | None = 0.0,
    ) -> None:
        """Build the engine and the manager over it (the first step of every example).

        The engine yields ``tokens``, then ends as ``ending`` says (``"none"``, ``"completion"``: a
        completion of the tokens' text, ``"completion without text"``); ``fault`` (``"raise"``: an
        :class:`~lmstream.conformance.explore.EngineError`, ``"bytes"``: a ``bytes`` item) comes before token
        ``fault_at``; a :class:`~lmstream.conformance.Block` before item ``block_at`` (``None``: none);
        ``pause`` is its seconds between items (``None``: it never suspends between them). The manager gets
        a counting lock if ``lock``, and an ``after`` that records its call or raises
        :class:`~lmstream.conformance.explore.AfterError` (``after``: ``"record"``, ``"raise"``, ``None``).
        """
        if self._world is not None:
            raise RuntimeError("begin() was already called: an example builds one manager")
        factory = type(self).factory
        if factory is None:
            raise TypeError(
                f"{type(self).__name__}.factory is not set: expected a ManagerFactory, e.g. "
                "factory = lmstream.reference.StreamManager"
            )
        target = manager_target(factory, name=self.name)
        world = World(Setup(build_script(tokens, ending, fault, fault_at, block_at), lock, after, pause))
        self._world = world

        async def record(completion: object) -> None:
            world.after_calls.append(completion)
            if world.after_error is not None:
                raise world.after_error

        async def build() -> Exception | None:  # in the loop: a manager may need one to be built
            try:
                manager = target(world.engine, ROLE, after=record if after else None, lock=world.lock)
            except Exception as exc:
                return exc
            world.proxy = validate_manager(manager)
            world.stoppable = isinstance(world.proxy, ValidatedStoppableManager)
            return None

        error = self._run(build())
        if error is not None:
            self.fail("target", f"calling the factory raised {describe_exception(error)}")

    @precondition(_world_where(lambda world: world.consumer_open))
    @rule(turns=_TURNS)
    def step(self, turns: int) -> None:
        """The consumer asks for one token."""
        self._act(f"step(turns={turns})", turns, lambda world: self._command(world, "step"))

    @precondition(_world_where(lambda world: world.consumer_open))
    @rule(how=st.sampled_from(("break", "aclose")), turns=_TURNS)
    def leave(self, how: Literal["break", "aclose"], turns: int) -> None:
        """The consumer breaks out of its loop (dropping its iterator) or closes its iterator."""
        self._act(f"leave(how={how!r}, turns={turns})", turns, lambda world: self._command(world, how))

    @precondition(_world_where(lambda world: world.can_cancel))
    @rule(turns=_TURNS)
    def cancel(self, turns: int) -> None:
        """The consumer's task is cancelled."""

        def do(world: World) -> None:
            assert world.consumer_task is not None
            world.cancelled_consumer = world.consumer_task.cancel() or world.cancelled_consumer

        self._act(f"cancel(turns={turns})", turns, do)

    @precondition(_world_where(lambda world: len(world.waiters) < 3))
    @rule(method=st.sampled_from(("completion", "message", "await")), turns=_TURNS)
    def wait(self, method: Literal["completion", "message", "await"], turns: int) -> None:
        """A waiter asks for the result in a task of its own."""
        self._act(f"wait(method={method!r}, turns={turns})", turns, lambda world: self._waiter(world, method))

    @precondition(_world_where(lambda world: world.stoppable and len(world.stops) < 2))
    @rule(turns=_TURNS)
    def stop(self, turns: int) -> None:
        """``aclose()`` of the manager, in a task of its own."""

        def do(world: World) -> None:
            name = f"explore: aclose() {len(world.stops) + 1}"
            world.stops.append(self.loop.create_task(world.proxy.aclose(), name=name))

        self._act(f"stop(turns={turns})", turns, do)

    @precondition(_world_where(lambda world: world.can_release))
    @rule(turns=_TURNS)
    def release(self, turns: int) -> None:
        """The engine's :class:`~lmstream.conformance.Block` is released."""

        def do(world: World) -> None:
            world.released = True
            world.probe.release()

        self._act(f"release(turns={turns})", turns, do)

    @precondition(_world_where(lambda world: True))
    @rule()
    def settle(self) -> None:
        """The loop runs until nothing is left to run."""
        self._act("settle()", 0, lambda world: self._run(self._quiet.settle(self.timeout)))

    @invariant()
    def keeps_the_contract(self) -> None:
        """What holds after every step (see the module docstring)."""
        if self._world is not None and not self._closed:
            try:
                check_now(self._world)
            except Violation as violation:
                self.fail(violation.requirement_id, violation.observed)

    def teardown(self) -> None:
        """The end of the story (see the module docstring), unless the example already failed; then the
        loop is closed."""
        world = self._world
        try:
            if world is not None and not self._closed and sys.exc_info()[1] is self._outer:
                try:
                    self._finish(world)
                except Violation as violation:
                    if not self.trace or not self.trace[-1].startswith("end:"):
                        self.trace.append(f"end: {world.describe()}")
                    self.fail(violation.requirement_id, violation.observed)
                self._close()
                if self.sink.lines:
                    self.fail(
                        "SM-15", f"something warned or was reported by asyncio: {'; '.join(self.sink.lines)}"
                    )
        finally:
            self._close()

    # ------------------------------------------------------------------ how
    def _require(self) -> World:
        if self._world is None or self._closed:
            raise RuntimeError("the example has not begun (begin() runs first) or is over (teardown())")
        return self._world

    def _run(self, coro: Awaitable[T]) -> T:
        with capture(self.sink):
            return self.loop.run_until_complete(coro)

    def _act(self, label: str, turns: int, do: Callable[[World], object]) -> None:
        world = self._require()
        do(world)
        if turns:
            self._run(_turns(turns))
        self.trace.append(f"{len(self.trace) + 1}. {label}: {world.describe()}")

    def _command(self, world: World, command: str) -> None:
        if world.consumer is None:
            world.consumer = Consumer(world.proxy, world.stopped)
            world.consumer_task = self.loop.create_task(world.consumer.run(), name="explore: the consumer")
        world.consumer.commands.put_nowait(command)
        world.terminal_sent = world.terminal_sent or command != "step"

    def _waiter(self, world: World, method: str, *, final: bool = False) -> None:
        waiter = Waiter(world.proxy, method, world.unread, final=final)
        label = "the final completion()" if final else f"{method}() waiter {len(world.waiters)}"
        waiter.task = self.loop.create_task(waiter.run(), name=f"explore: {label}")
        world.waiters.append(waiter)

    def _until_done(self, tasks: list[asyncio.Task[Any]]) -> bool:
        return self._run(self._quiet.until_done(tasks, self.timeout))

    def _finish(self, world: World) -> None:
        if world.stops and not self._until_done(world.stops):
            raise Violation(
                "SM-22",
                f"aclose() had not returned when nothing was left to run; the engine was "
                f"{world.engine_state()}",
            )
        ended = world.ended()
        if ended is not None:  # the results must be there now, with the engine as it is (blocked or not)
            self._waiter(world, "completion", final=True)
            pending = world.waiter_tasks()
            consumer = world.consumer
            if consumer is not None and consumer.in_step and world.consumer_task is not None:
                pending.append(world.consumer_task)  # a stop must end a step blocked in the engine (SM-24)
            if not self._until_done(pending):
                raise Violation(
                    hang_id(world), f"{ended}, but {world.stuck()} still waited with nothing left to run"
                )
        world.probe.release()
        if world.consumer is not None and world.consumer_task is not None and not world.consumer_task.done():
            world.consumer.commands.put_nowait("drain")
        if not any(waiter.final for waiter in world.waiters):
            self._waiter(world, "completion", final=True)
        everything = [*world.waiter_tasks(), *world.stops, *self._spawned]
        if world.consumer_task is not None:
            everything.append(world.consumer_task)
        if not self._until_done(everything):
            how = world.ended() or "the stream was read to its end"
            raise Violation(hang_id(world), f"the engine released, {how}, but {world.stuck()} never finished")
        self.trace.append(f"end: the engine released, the story finished: {world.describe()}")
        check_finished(world)
        self._run(self._quiet.settle(self.timeout))
        left = [task.get_name() for task in asyncio.all_tasks(self.loop) if not task.done()]
        if left:
            raise Violation("SM-15", f"task(s) left running at the end: {', '.join(left)}")

    def _close(self) -> None:
        """Cancel what is left, close the loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        loop = self.loop
        try:
            if self._world is not None:
                self._world.probe.release()
            leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                self._run(asyncio.wait(leftovers, timeout=self.timeout))
            for task in leftovers:  # retrieve what they raised, so asyncio does not complain
                if task.done() and not task.cancelled():
                    task.exception()
            self._run(loop.shutdown_asyncgens())
        finally:
            with capture(self.sink):
                loop.close()


async def _turns(count: int) -> None:
    """Let the loop turn ``count`` times (an explored interleaving, not a wait for a condition)."""
    for _ in range(count):
        await asyncio.sleep(0)
