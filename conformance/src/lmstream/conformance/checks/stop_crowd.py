"""The checks of a stop among many other tasks (SM-34), and of a stop of a step that runs in a task of its
own while the engine awaits something that does not say what it awaits (SM-24).

A chat server's loop runs thousands of tasks besides the stream being stopped. The SM-34 check fills the
loop with a *crowd* of :data:`CROWD` idle tasks that record, without changing anything, every attribute
of theirs anyone reads while the stop runs (a task is looked at through its attributes: ``get_coro()``,
``done()``, ``get_loop()``), and in which turn of the event loop it was read. It then stops a stream
blocked in its engine in these situations:

* the step runs in the task that began the iteration (the usual ``async for`` in a handler's task);
* the step runs in a task of its own (``asyncio.create_task(anext(it))``), the engine awaiting an
  ``asyncio.Event``, whose future its chain of awaits leads to;
* the same, the engine awaiting an object that does not say what it awaits (it holds two futures);
* the same, the engine polling with ``asyncio.sleep(0)`` (its chain ends at a bare yield).

In the first two a stop has what it needs without the crowd: it must read none of it (up to
:data:`_GLANCES` tasks are let pass). In the last two it may search the crowd, but must let the loop run
between slices of that search: never more than :data:`SLICE` of the crowd read in one turn of the loop
(each is stopped :data:`_SEARCHES` times). The SM-24 check of this module stops the last two without the
crowd, and asks only that the loop end at once.
Reading attributes is counted, never timed, so the verdict does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import _Opaque  # pyright: ignore[reportPrivateUsage]  # the package's own
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import ROLE, TOKENS, construct
from ._registry import check
from ._stop_support import LATER, NO_ACLOSE, PROMPT, aclose_of, until

__all__ = ["CROWD", "SLICE"]

_MANAGER = TargetKind.MANAGER

CROWD: Final = 5_000
"""How many idle tasks share the loop with the stream in the SM-34 check."""

_SEARCHES: Final = 4
"""How many times the SM-34 check stops a stream whose step a stop must search for, in each such situation:
a search finds the stepping task wherever the loop's registry happens to put it (by its address), so one
search may read only a few tasks; eight searches, each for a task at a new address among :data:`CROWD`
tasks, all stopping before :data:`SLICE` reads, happen about three times in a million runs."""

SLICE: Final = 1_000
"""The most tasks of the crowd a stop may read in one turn of the event loop (SM-34)."""

_GLANCES: Final = 20
"""How many tasks of the crowd a stop with no need to search may read all the same."""

Situation = Literal["consumer", "consumer, opaque", "relay, opaque", "event", "opaque", "polling"]
_SAID: Final[dict[Situation, str]] = {
    "consumer": "the step blocked in the task that began the iteration",
    "consumer, opaque": "the step blocked in the task that began the iteration, the engine awaiting an "
    "object that does not say what it awaits",
    "relay, opaque": "the step blocked in the task that began the iteration, the consumer iterating through "
    "a relaying async generator (a streaming response's body), the engine awaiting an object that does not "
    "say what it awaits",
    "event": "the step blocked in a task of its own, the engine awaiting an asyncio.Event",
    "opaque": "the step blocked in a task of its own, the engine awaiting an object that does not say what "
    "it awaits",
    "polling": "the step blocked in a task of its own, the engine polling with asyncio.sleep(0)",
}


# ---------------------------------------------------------------------------------------------- the crowd
@dataclass
class _Watch:
    """What was read of the crowd while a stop ran, by turn of the event loop."""

    turn: int = 0
    read: set[int] = field(default_factory=set[int])
    most_in_a_turn: int = 0
    _this_turn: set[int] = field(default_factory=set[int])
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
        # Every step task the check made, kept alive: a new one then lies elsewhere in memory, hence
        # elsewhere in the loop's registry of tasks, so that each search meets the crowd in another order.
        self.steps: list[asyncio.Task[Any]] = []

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
            debug = self._loop.get_debug()
            self._loop.set_debug(False)  # (as in __init__: 5,000 wake-ups, each recording its stack)
            try:
                self._released.set_result(None)
            finally:
                self._loop.set_debug(debug)
        await ctx.wait_tasks(self.tasks, timeout=LATER)
        self.tasks.clear()  # gone from the loop's registry of tasks too, once nothing holds them
        self.steps.clear()


# ---------------------------------------------------------------------------------------------- the stream
class _Engine:
    """Two tokens, then blocked (on an Event, or on an :class:`_Opaque`) until :meth:`release`, then the
    rest; ``closed`` once its cleanup ran."""

    def __init__(self, situation: Situation) -> None:
        self.waiting = False
        self.closed = False
        self._situation = situation
        self._release = asyncio.Event()
        self._awaiting: _Opaque | None = None

    async def stream(self) -> AsyncGenerator[str, None]:
        try:
            yield TOKENS[0]
            yield TOKENS[1]
            self.waiting = True
            try:
                if "opaque" in self._situation:
                    self._awaiting = _Opaque()
                    await self._awaiting
                elif self._situation == "polling":
                    while not self._release.is_set():  # noqa: ASYNC110  # a polling engine is the point
                        await asyncio.sleep(0)
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


async def _consume(
    manager: Any, situation: Situation, tokens: list[object], steps: list[asyncio.Task[Any]]
) -> None:
    """Two tokens in this task, then each step in a task of its own (appended to ``steps``), but for the
    ``consumer`` situations (and ``relay``: through an async generator of its own, in this task)."""
    iterator = aiter(manager)
    try:
        for _ in range(2):
            tokens.append(await anext(iterator))
        if situation == "relay, opaque":
            async for token in _relay(iterator):
                tokens.append(token)
            return
        while True:
            if situation in ("consumer", "consumer, opaque"):
                tokens.append(await anext(iterator))
            else:
                step = asyncio.get_running_loop().create_task(anext(iterator))
                steps.append(step)
                tokens.append(await step)
    except StopAsyncIteration:
        return


async def _relay(iterator: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """A streaming response's body: the manager's tokens, relayed."""
    while True:
        try:
            token = await anext(iterator)
        except StopAsyncIteration:
            return
        yield token


async def _stop_once(
    target: ManagerTarget, ctx: CheckContext, situation: Situation, crowd: _Crowd | None
) -> _Stopped:
    """One stop; with a crowd, watched. The step tasks are kept alive by the crowd (see :data:`_SEARCHES`)."""
    engine = _Engine(situation)
    manager: Any = construct(target, engine.stream(), ROLE)
    if not callable(getattr(manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    tokens: list[object] = []
    steps = crowd.steps if crowd is not None else []
    consumer = ctx.spawn(_consume(manager, situation, tokens, steps), name="lmstream consumer")
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
    if consumer.cancelled():  # the loop raised CancelledError (_consume does not catch it)
        error = error or asyncio.CancelledError()
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
    blocked = {
        "opaque": "await Opaque()",
        "consumer, opaque": "await Opaque()",
        "relay, opaque": "await Opaque()",
        "polling": "while True: await asyncio.sleep(0)",
    }.get(situation, "await asyncio.Event().wait()")
    own_task = situation not in ("consumer", "consumer, opaque", "relay, opaque")
    step = "await asyncio.create_task(anext(it))" if own_task else "await anext(it)"
    relayed = situation == "relay, opaque"
    body = [*(_OPAQUE_BODY if "opaque" in situation else ())]
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
        *(
            [
                "    async def relay():  # a streaming response's body",
                "        async for token in it:",
                "            yield token",
                "    async for token in relay():",
                "        print(token)",
            ]
            if relayed
            else [
                "    try:",
                "        while True:",
                f"            print({step})",
                "    except StopAsyncIteration:",
                "        pass",
            ]
        ),
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
    summary="aclose() of a step in its own task or through a relay, the engine opaque: the loop ends at once",
)
async def stop_of_a_step_in_its_own_task_the_stop_cannot_see_through(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    situations: tuple[Situation, ...] = ("event", "opaque", "polling", "relay, opaque")
    for situation in situations:
        stopped = await _stop_once(target, ctx, situation, None)
        if not stopped.ended:
            raise _fail(ctx, "SM-24", situation, f"the loop had not ended {seconds(PROMPT)} after aclose()")
        if stopped.error is not None:
            raised = describe_exception(stopped.error)
            raise _fail(ctx, "SM-24", situation, f"the consumer or aclose() raised {raised}")
        if not stopped.closed:
            raise _fail(ctx, "SM-24", situation, "the engine stream was not closed (its cleanup had not run)")


async def _blame_the_crowd(
    target: ManagerTarget, ctx: CheckContext, situation: Situation, stopped: _Stopped, crowd: _Crowd
) -> CheckFailure | None:
    """A stop among the crowd that did not end the loop at once, or raised: an SM-34 failure if the same stop
    with the crowd gone works (the other tasks made the difference); else ``None``, with a note (the stop
    fails alone too: SM-24's checks report it, and nothing is left to say about the crowd). The crowd is
    dispersed either way."""
    went = (
        f"the consumer or aclose() raised {describe_exception(stopped.error)}"
        if stopped.error is not None
        else f"the loop had not ended {seconds(PROMPT)} after aclose()"
    )
    await crowd.disperse(ctx)
    alone = await _stop_once(target, ctx, situation, None)
    if alone.ended and alone.error is None:
        return _fail(ctx, "SM-34", situation, f"among {CROWD:,} other tasks, {went}; without them, it worked")
    ctx.note(
        f"with {_SAID[situation]}, {went}, with or without other tasks (SM-24's check reports it); "
        "the crowd was not judged further"
    )
    return None


@check(
    "SM-34",
    _MANAGER,
    summary=f"aclose() among {CROWD:,} other tasks reads none of them, or searches them in slices",
)
async def stop_among_many_tasks_costs_the_same(target: ManagerTarget, ctx: CheckContext) -> None:
    crowd = _Crowd(asyncio.get_running_loop())
    try:
        needless: tuple[Situation, ...] = ("consumer", "consumer, opaque", "event")
        searched: tuple[Situation, ...] = ("opaque", "polling")
        situations: tuple[Situation, ...] = (*needless, *searched * _SEARCHES)
        for situation in situations:
            stopped = await _stop_once(target, ctx, situation, crowd)
            watch = stopped.watch
            assert watch is not None
            if not stopped.ended or stopped.error is not None:
                failure = await _blame_the_crowd(target, ctx, situation, stopped, crowd)
                if failure is not None:
                    raise failure
                return  # the stop fails alone: the rest of this manager's stopping is SM-24's to judge
            if situation in needless and len(watch.read) > _GLANCES:
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
