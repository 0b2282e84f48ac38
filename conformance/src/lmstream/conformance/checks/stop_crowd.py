"""The checks of a stop among many other tasks (SM-34), and of a stop of a step that runs in a task of its
own while the engine awaits something that does not say what it awaits (SM-24).

A chat server's loop runs thousands of tasks besides the stream being stopped. The SM-34 check fills the
loop with a *crowd* of :data:`CROWD` idle tasks that record, without changing anything, every attribute
of theirs anyone reads while the stop runs (a task is looked at through its attributes: ``get_coro()``,
``done()``, ``get_loop()``), and in which turn of the event loop it was read. It then stops a stream
blocked in its engine in three situations:

* the step runs in the task that began the iteration (the usual ``async for`` in a handler's task);
* the step runs in a task of its own (``asyncio.create_task(anext(it))``), the engine awaiting an
  ``asyncio.Event``, whose future its chain of awaits leads to;
* the same, the engine awaiting an object that does not say what it awaits (it holds two futures).

In the first two a stop has what it needs without the crowd: it must read none of it (up to
:data:`_GLANCES` tasks are let pass). In the third it may search the crowd, but must let the loop run
between slices of that search: never more than :data:`SLICE` of the crowd read in one turn of the loop.
Reading attributes is counted, never timed, so the verdict does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import ROLE, TOKENS
from ._registry import check
from ._stop_support import LATER, NO_ACLOSE, PROMPT, aclose_of, until

__all__ = ["CROWD", "SLICE"]

_MANAGER = TargetKind.MANAGER

CROWD: Final = 2_000
"""How many idle tasks share the loop with the stream in the SM-34 check."""

SLICE: Final = 1_000
"""The most tasks of the crowd a stop may read in one turn of the event loop (SM-34)."""

_GLANCES: Final = 20
"""How many tasks of the crowd a stop with no need to search may read all the same."""

Situation = Literal["consumer", "event", "opaque"]
_SAID: Final[dict[Situation, str]] = {
    "consumer": "the step blocked in the task that began the iteration",
    "event": "the step blocked in a task of its own, the engine awaiting an asyncio.Event",
    "opaque": "the step blocked in a task of its own, the engine awaiting an object that does not say what "
    "it awaits",
}


# ---------------------------------------------------------------------------------------------- the crowd
@dataclass
class _Watch:
    """What was read of the crowd while a stop ran, by turn of the event loop."""

    turn: int = 0
    read: set[int] = field(default_factory=set)
    most_in_a_turn: int = 0
    _this_turn: set[int] = field(default_factory=set)
    _turn_seen: int = -1

    def saw(self, task_id: int) -> None:
        self.read.add(task_id)
        if self._turn_seen != self.turn:
            self._turn_seen, self._this_turn = self.turn, set()
        self._this_turn.add(task_id)
        self.most_in_a_turn = max(self.most_in_a_turn, len(self._this_turn))


class _CrowdTask(asyncio.Task[None]):
    """An idle task of the crowd: records each read of one of its attributes while a watch is on."""

    watch: ClassVar[_Watch | None] = None

    def __getattribute__(self, name: str) -> Any:
        watch = _CrowdTask.watch
        if watch is not None:
            watch.saw(id(self))
        return super().__getattribute__(name)


async def _idle(until_released: asyncio.Future[None]) -> None:
    await until_released


class _Crowd:
    """:data:`CROWD` idle tasks and a ticker counting the loop's turns, for the time of one check."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._released: asyncio.Future[None] = loop.create_future()
        # In debug mode (the runner's, to see slow callbacks) each new task records its stack: 2,000 of
        # them would hold the loop for 0.15 s. The crowd's tasks are ours; their stacks tell nothing.
        debug = loop.get_debug()
        loop.set_debug(False)
        try:
            self.tasks = [_CrowdTask(_idle(self._released), loop=loop) for _ in range(CROWD)]
        finally:
            loop.set_debug(debug)
        self._watch: _Watch | None = None

    def watch(self) -> _Watch:
        self._watch = _CrowdTask.watch = _Watch()
        self._loop.call_soon(self._tick)
        return self._watch

    def unwatch(self) -> None:
        self._watch = _CrowdTask.watch = None

    def _tick(self) -> None:
        if self._watch is not None:
            self._watch.turn += 1
            self._loop.call_soon(self._tick)

    async def disperse(self, ctx: CheckContext) -> None:
        self.unwatch()
        if not self._released.done():
            self._released.set_result(None)
        await ctx.wait_tasks(self.tasks, timeout=LATER)


# ---------------------------------------------------------------------------------------------- the stream
class _Opaque:
    """An awaitable that does not say what it awaits: it waits on the first of two futures it holds in a
    tuple, so that nothing outside can tell which of them (if either) it waits on."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._futures: tuple[asyncio.Future[None], ...] = (loop.create_future(), loop.create_future())

    def release(self) -> None:
        if not self._futures[0].done():
            self._futures[0].set_result(None)

    def __await__(self) -> Generator[Any, None, None]:
        return self

    def __iter__(self) -> _Opaque:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: object) -> Any:
        future = self._futures[0]
        if future.done():
            raise StopIteration(None)
        future._asyncio_future_blocking = True  # what Future.__await__ does: the task waits on it
        return future

    def throw(self, error: BaseException, *rest: object) -> Any:
        raise error


class _Engine:
    """Two tokens, then blocked (on an Event, or on an :class:`_Opaque`) until :meth:`release`, then the
    rest; ``closed`` once its cleanup ran."""

    def __init__(self, *, opaque: bool) -> None:
        self.waiting = False
        self.closed = False
        self._opaque = opaque
        self._release = asyncio.Event()
        self._awaiting: _Opaque | None = None

    async def stream(self) -> AsyncGenerator[str, None]:
        try:
            yield TOKENS[0]
            yield TOKENS[1]
            self.waiting = True
            try:
                if self._opaque:
                    self._awaiting = _Opaque()
                    await self._awaiting
                else:
                    await self._release.wait()
            finally:
                self.waiting = False
            for token in TOKENS[2:]:
                yield token
        finally:
            self.closed = True

    def release(self) -> None:
        self._release.set()
        if self._awaiting is not None:
            self._awaiting.release()


# ---------------------------------------------------------------------------------------------- one stop
@dataclass
class _Stopped:
    """How one stop went: the loop's end, the engine, and what was read of the crowd."""

    ended: bool
    closed: bool
    error: BaseException | None
    watch: _Watch | None


async def _consume(manager: Any, situation: Situation, tokens: list[object]) -> None:
    """Two tokens in this task, then each step in a task of its own (but for ``consumer``)."""
    iterator = aiter(manager)
    try:
        for _ in range(2):
            tokens.append(await anext(iterator))
        while True:
            if situation == "consumer":
                tokens.append(await anext(iterator))
            else:
                tokens.append(await asyncio.get_running_loop().create_task(anext(iterator)))
    except StopAsyncIteration:
        return


async def _stop_once(
    target: ManagerTarget, ctx: CheckContext, situation: Situation, crowd: _Crowd | None
) -> _Stopped:
    engine = _Engine(opaque=situation == "opaque")
    try:
        manager: Any = target(engine.stream(), ROLE)
    except Exception as exc:
        raise CheckFailure(
            f"calling {target.name}(stream_iter, role) raised {describe_exception(exc)}",
            expected="a manager (ManagerFactory: kani's StreamManager constructor signature)",
        ) from exc
    if not callable(getattr(manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    tokens: list[object] = []
    consumer = ctx.spawn(_consume(manager, situation, tokens), name="lmstream consumer")
    if not await until(ctx, lambda: engine.waiting or consumer.done(), timeout=LATER) or not engine.waiting:
        raise CheckSkipped(
            f"the manager did not read the engine up to its block ({len(tokens)} token(s), the consumer "
            f"{'ended' if consumer.done() else 'still running'}): no stop to make (see SM-1 to SM-17)"
        )
    watch = crowd.watch() if crowd is not None else None
    stopper = ctx.spawn(aclose_of(manager), name="lmstream stopper")
    ended = await until(ctx, consumer.done, timeout=PROMPT)
    if crowd is not None:
        crowd.unwatch()
    if not ended:
        engine.release()
    await ctx.wait_tasks([stopper, consumer], timeout=LATER)
    error: BaseException | None = None
    for task in (consumer, stopper):
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = error or task.exception()
    return _Stopped(ended, engine.closed, error, watch)


_OPAQUE_BODY: Final = (
    "class Opaque:  # waits on the first of two futures it holds, and says neither",
    "    def __init__(self):",
    "        loop = asyncio.get_running_loop()",
    "        self.futures = (loop.create_future(), loop.create_future())",
    "    def __await__(self):",
    "        return self",
    "    def __next__(self):",
    "        return self.send(None)",
    "    def send(self, value):",
    "        if self.futures[0].done():",
    "            raise StopIteration",
    "        self.futures[0]._asyncio_future_blocking = True",
    "        return self.futures[0]",
    "    def throw(self, error, *rest):",
    "        raise error",
)


def _reproduction(ctx: CheckContext, situation: Situation, crowd: bool) -> str:
    imports, expression = ctx.target_reference()
    blocked = "await Opaque()" if situation == "opaque" else "await asyncio.Event().wait()"
    step = "await anext(it)" if situation == "consumer" else "await asyncio.create_task(anext(it))"
    body = [*(_OPAQUE_BODY if situation == "opaque" else ())]
    if crowd:
        body.append(f"crowd = [asyncio.create_task(asyncio.Event().wait()) for _ in range({CROWD})]")
    body += [
        "async def engine():",
        f"    yield {TOKENS[0]!r}",
        f"    yield {TOKENS[1]!r}",
        f"    {blocked}  # blocked awaiting its next item",
        f"    yield {TOKENS[2]!r}",
        f"manager = {expression}(engine(), {ROLE!r})",
        "async def consume():",
        "    it = aiter(manager)",
        "    print(await anext(it), await anext(it))",
        "    try:",
        "        while True:",
        f"            print({step})",
        "    except StopAsyncIteration:",
        "        pass",
        "consumer = asyncio.create_task(consume())",
        "for _ in range(50):",
        "    await asyncio.sleep(0)",
        "loop = asyncio.get_running_loop()",
        "started = loop.time()",
        "await asyncio.wait_for(manager.aclose(), 1)",
        "await asyncio.wait_for(consumer, 1)  # the loop ends at once",
        "print(f'stopped in {(loop.time() - started) * 1000:.2f} ms')",
    ]
    return script(imports, body)


def _fail(ctx: CheckContext, requirement: str, situation: Situation, observed: str) -> CheckFailure:
    expected = (
        "a stop that reads none of the loop's other tasks when it need not search them, and lets the loop "
        f"run at least every {SLICE:,} tasks when it must"
        if requirement == "SM-34"
        else "the consumer's loop ends at once, without an exception, the engine stream closed (SM-24)"
    )
    return CheckFailure(
        f"a stop from another task with {_SAID[situation]}: {observed}",
        expected=expected,
        reproduction=_reproduction(ctx, situation, crowd=requirement == "SM-34"),
    )


# ---------------------------------------------------------------------------------------------- the checks
@check(
    "SM-24",
    _MANAGER,
    summary="aclose() of a step in a task of its own, the engine awaiting an opaque awaitable: at once",
)
async def stop_of_a_step_in_its_own_task_awaiting_an_opaque_awaitable(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    stopped = await _stop_once(target, ctx, "opaque", None)
    if not stopped.ended:
        raise _fail(ctx, "SM-24", "opaque", f"the loop had not ended {seconds(PROMPT)} after aclose()")
    if stopped.error is not None:
        raise _fail(
            ctx, "SM-24", "opaque", f"the consumer or aclose() raised {describe_exception(stopped.error)}"
        )
    if not stopped.closed:
        raise _fail(ctx, "SM-24", "opaque", "the engine stream was not closed (its cleanup had not run)")


@check(
    "SM-34",
    _MANAGER,
    summary=f"aclose() among {CROWD:,} other tasks reads none of them, or searches them in slices",
)
async def stop_among_many_tasks_costs_the_same(target: ManagerTarget, ctx: CheckContext) -> None:
    crowd = _Crowd(asyncio.get_running_loop())
    try:
        for situation in ("consumer", "event", "opaque"):
            stopped = await _stop_once(target, ctx, situation, crowd)
            watch = stopped.watch
            assert watch is not None
            if not stopped.ended:
                ctx.note(
                    f"with {_SAID[situation]}, the stop waited for the engine (SM-24's checks report it)"
                )
            if situation != "opaque" and len(watch.read) > _GLANCES:
                raise _fail(
                    ctx, "SM-34", situation, f"the stop read {len(watch.read):,} of the {CROWD:,} other tasks"
                )
            if watch.most_in_a_turn > SLICE:
                raise _fail(
                    ctx,
                    "SM-34",
                    situation,
                    f"the stop read {watch.most_in_a_turn:,} of the {CROWD:,} other tasks in one turn of the "
                    "event loop",
                )
    finally:
        await crowd.disperse(ctx)
