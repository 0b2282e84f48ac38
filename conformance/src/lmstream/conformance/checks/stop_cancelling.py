"""The checks of stops that meet cancellations the suite's other stop checks do not: a consumer whose task
already has a cancellation pending (it iterates inside ``except CancelledError:``, as cleanup code does) is
stopped (SM-24, SM-26); a real cancellation arrives together with a stop, the step in the consumer's task or
in a task of its own (SM-26); an engine swallows the stop's cancellation (SM-26).

A manager that interrupts a blocked step with ``Task.cancel()`` must tell its own cancellation from a real
one by the task's ``cancelling()`` count as it was when the iteration began, and undo exactly its own.
``Task.cancelling()`` is Python 3.11+: on 3.10 only what 3.10 can show is judged, and a note says so.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Awaitable, Generator
from dataclasses import dataclass, field
from typing import Any, Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Block
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import ROLE, TOKENS, CountingLock, construct
from ._registry import check
from ._stop_snippets import stop_reproduction
from ._stop_support import BLOCKED, LATER, NO_ACLOSE, PROMPT, AfterProbe, Rig, aclose_of, make_rig, until

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_PY311: Final = sys.version_info >= (3, 11)
_NO_COUNT: Final = "Python 3.10 has no Task.cancelling(): the task's cancellation count was not judged"


def _cancelling(task: asyncio.Task[Any] | None) -> int | None:
    method = getattr(task, "cancelling", None)
    return int(method()) if method is not None else None


# ---------------------------------------------------------------------------------------------- pending
@dataclass
class _Cleanup:
    """A consumer that iterates the manager inside ``except CancelledError:``, then re-raises."""

    tokens: list[object] = field(default_factory=list[object])
    loop_error: BaseException | None = None
    in_cleanup: bool = False
    loop_ended: bool = False
    counts: list[int | None] = field(default_factory=list[int | None])
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    opaque_step: bool = False
    """Step through an awaitable that does not say what it awaits (as a C extension's does), not async for."""

    async def run(self, manager: Any) -> None:
        task = asyncio.current_task()
        try:
            await asyncio.Event().wait()  # cancelled here by the check
        except asyncio.CancelledError:
            self.in_cleanup = True
            self.counts.append(_cancelling(task))
            try:
                if self.opaque_step:
                    iterator = aiter(manager)
                    while True:
                        self.tokens.append(await _OpaqueStep(anext(iterator)))
                else:
                    async for token in manager:
                        self.tokens.append(token)
            except StopAsyncIteration:
                pass
            except BaseException as exc:  # judged, then the task's own cancellation goes on
                self.loop_error = exc
            self.loop_ended = True
            self.counts.append(_cancelling(task))
            await self.stopped.wait()
            self.counts.append(_cancelling(task))
            raise


_CLEANUP_BODY: Final = (
    "counts = []",
    "async def consume():",
    "    task = asyncio.current_task()",
    "    try:",
    "        await asyncio.Event().wait()",
    "    except asyncio.CancelledError:",
    "        counts.append(task.cancelling())",
    "        async for token in manager:  # cleanup: read the reply out",
    "            pass",
    "        counts.append(task.cancelling())",
    "        raise",
    "consumer = asyncio.create_task(consume())",
    "await asyncio.sleep(0)",
    "consumer.cancel()",
    "await until_blocked(probe)",
    "await asyncio.wait_for(manager.aclose(), 1)",
    "await asyncio.wait([consumer], timeout=1)",
    "print(counts)  # [1, 1]: the stop neither raised into the loop nor changed the count",
)


class _OpaqueStep(Generator[Any, None, Any]):
    """One step of the manager's iterator behind an object that does not say what it awaits (a plain object
    with ``send``/``throw``, as a C extension's awaitable is): a stop cannot follow the consumer's chain of
    awaits through it to the manager's step."""

    def __init__(self, step: Awaitable[Any]) -> None:
        self._hidden = (step.__await__(),)

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def send(self, value: None) -> Any:
        return self._hidden[0].send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        return self._hidden[0].throw(typ if val is None else val)


async def _stop_in_cleanup(
    target: ManagerTarget, ctx: CheckContext, *, opaque_step: bool = False
) -> tuple[Rig, _Cleanup, bool, asyncio.Task[None]]:
    """Stop the manager while a consumer with a cancellation pending is blocked in the engine; whether the
    loop ended within :data:`PROMPT` of the stop."""
    rig = await make_rig(target, ctx, BLOCKED, lock=True, after=AfterProbe())
    cleanup = _Cleanup(opaque_step=opaque_step)
    task = ctx.spawn(cleanup.run(rig.manager), name="lmstream consumer in except CancelledError")
    await ctx.settle()
    task.cancel()
    await until(ctx, lambda: rig.probe.blocked or cleanup.loop_ended or task.done(), timeout=LATER)
    if not rig.probe.blocked:
        raise CheckSkipped(
            f"the consumer (in its except CancelledError block) never got the engine blocked "
            f"({len(cleanup.tokens)} token(s), loop error: {cleanup.loop_error!r})"
        )
    stop = ctx.spawn(aclose_of(rig.manager), name="lmstream stopper")
    prompt = await until(ctx, lambda: cleanup.loop_ended, timeout=PROMPT)
    if not prompt:
        rig.probe.release()
    await ctx.wait_tasks([stop], timeout=LATER)
    cleanup.stopped.set()
    await ctx.wait_tasks([task], timeout=LATER)
    return rig, cleanup, prompt, task


@check(
    "SM-24",
    _MANAGER,
    summary="aclose() of a loop in an except CancelledError block: the loop ends cleanly, no CancelledError",
)
async def stop_ends_the_loop_of_a_task_already_cancelling(target: ManagerTarget, ctx: CheckContext) -> None:
    for opaque_step in (False, True):
        await _stop_ends_the_loop_in_cleanup(target, ctx, opaque_step=opaque_step)


async def _stop_ends_the_loop_in_cleanup(
    target: ManagerTarget, ctx: CheckContext, *, opaque_step: bool
) -> None:
    rig, cleanup, prompt, _ = await _stop_in_cleanup(target, ctx, opaque_step=opaque_step)
    shape = ", each step awaited through an object that does not say what it awaits" if opaque_step else ""
    problem: str | None = None
    if not prompt:
        problem = f"the consumer's loop had not ended {seconds(PROMPT)} after aclose()"
    elif cleanup.loop_error is not None:
        problem = f"the consumer's loop raised {describe_exception(cleanup.loop_error)}"
    elif len(cleanup.tokens) > 2:
        problem = f"the loop received {cleanup.tokens[2:]!r} after the stop"
    if problem is not None:
        raise CheckFailure(
            "a consumer whose task had a cancellation pending (it iterated in its except CancelledError "
            f"block{shape}) was stopped with the engine blocked after 2 tokens: {problem}",
            expected=(
                "a stop during iteration ends the consumer's loop at its next step without an exception, in "
                "whatever task it runs, one with a cancellation already pending included"
            ),
            reproduction=stop_reproduction(ctx, rig.items, _CLEANUP_BODY, lock=True, after=True),
        )


@check(
    "SM-26",
    _MANAGER,
    summary="aclose() of a loop in an except CancelledError block keeps the task's pending cancellation",
)
async def stop_keeps_a_cancellation_already_pending(target: ManagerTarget, ctx: CheckContext) -> None:
    if not _PY311:
        make = await make_rig(target, ctx)  # skips a manager without aclose() first
        del make
        raise CheckSkipped(_NO_COUNT)
    rig, cleanup, _, task = await _stop_in_cleanup(target, ctx)
    problem: str | None = None
    if len(set(cleanup.counts)) > 1:
        before, *later = cleanup.counts
        problem = (
            f"the consumer task's cancelling() was {before} when its loop began, then {later} (when the loop "
            "ended, once aclose() had returned)"
        )
    elif task.done() and not task.cancelled():
        problem = "the consumer's task did not end cancelled: its own pending cancellation was lost"
    if problem is not None:
        raise CheckFailure(
            "a consumer whose task had a cancellation pending (it iterated in its except CancelledError "
            f"block) was stopped with the engine blocked: {problem}",
            expected=(
                "a stop leaves the consumer task's cancellation count as it was before the stop (here 1: the "
                "cancellation it was handling stays pending)"
            ),
            reproduction=stop_reproduction(ctx, rig.items, _CLEANUP_BODY, lock=True, after=True),
        )


# ---------------------------------------------------------------------------------------------- real ones
@dataclass
class _Propagated:
    error: BaseException | None = None
    count: int | None = None
    step: asyncio.Task[Any] | None = None
    steps: int = 0


async def _consume(manager: Any, seen: _Propagated, *, own_task: bool, pending: bool) -> None:
    """Iterate ``manager``; each step (after the first, with ``pending``) in a task of its own; record the
    CancelledError that ends the loop and the task's count then. With ``pending``, first get a cancellation
    pending (the loop runs in the except block)."""
    task = asyncio.current_task()
    if pending:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await _steps(manager, seen, own_task=own_task, first_inline=True, task=task)
            raise
    await _steps(manager, seen, own_task=own_task, first_inline=False, task=task)


async def _steps(manager: Any, seen: _Propagated, *, own_task: bool, first_inline: bool, task: Any) -> None:
    iterator = aiter(manager)
    try:
        while True:
            step: Any = anext(iterator)
            inline = not own_task or (first_inline and seen.steps == 0)
            seen.steps += 1
            if inline:
                await step
                continue
            stepping = seen.step = asyncio.ensure_future(step)
            if not first_inline:
                await stepping
                continue
            # Watched from outside, so that only the step's own task awaits the manager's step; its outcome
            # (a CancelledError included) is raised here.
            await asyncio.wait([stepping])
            stepping.result()
    except StopAsyncIteration:
        return
    except asyncio.CancelledError as exc:
        seen.error, seen.count = exc, _cancelling(task)
        raise


_REAL_BODY: Final = (
    "seen = []",
    "async def consume():",
    "    iterator = aiter(manager)",
    "    try:",
    "        while True:",
    "            await asyncio.ensure_future(anext(iterator))  # each step in a task of its own",
    "    except asyncio.CancelledError as exc:",
    "        seen.append((exc.args, asyncio.current_task().cancelling()))",
    "        raise",
    "consumer = asyncio.create_task(consume())",
    "await until_blocked(probe)",
    "consumer.cancel()",
    "stop = asyncio.create_task(manager.aclose())",
    "await asyncio.wait([consumer, stop], timeout=1)",
    "print(consumer.cancelled(), seen)  # True [((), 1)]",
)


@check(
    "SM-26",
    _MANAGER,
    summary="a real cancellation with a stop propagates (a step in its own task too), right count, message",
)
async def real_cancellation_with_a_stop_propagates_as_itself(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    cases: list[tuple[str, bool, bool, str | None, bool]] = [
        # (where, step in its own task, a cancellation pending first, the real one's message, it comes first)
        ("the step in a task of its own, the cancellation first", True, False, None, True),
        ("the consumer's task, the cancellation first, with a message", False, False, "real", True),
    ]
    if _PY311:
        cases += [
            ("the step in a task of its own, the stop first", True, False, None, False),
            ("the consumer's task, the stop first", False, False, None, False),
            (
                "a task with a cancellation pending, later steps in tasks of their own",
                True,
                True,
                None,
                False,
            ),
        ]
    # The same with the engine awaiting an object that does not say what it awaits: the stop must then find
    # the task running the step, and tell its cancellation from the real one in that task.
    opaque = [
        (f"{where}, the engine opaque", own_task, pending, message, real_first)
        for where, own_task, pending, message, real_first in cases
        if own_task and not real_first
    ]
    for where, own_task, pending, message, real_first in [*cases, *opaque]:
        items = _OPAQUE_BLOCKED if where.endswith("the engine opaque") else BLOCKED
        problem = await _real_with_stop(
            target, ctx, items, own_task=own_task, pending=pending, message=message, real_first=real_first
        )
        if problem is not None:
            rig_items = items
            raise CheckFailure(
                f"with the engine blocked, a real cancellation and a stop in one turn ({where}): {problem}",
                expected=(
                    "a real cancellation of the consumer arriving with a stop still propagates as "
                    "CancelledError, with the task's cancelling() count of that cancellation alone, and "
                    "carrying no message of the stop's (its own message, when it arrived first)"
                ),
                reproduction=stop_reproduction(ctx, rig_items, _REAL_BODY),
            )
    if not _PY311:  # noted once the check applied (make_rig skips a manager without aclose() first)
        ctx.note("Python 3.10 cannot tell a stop's cancellation from a real one that follows it: not tried")


_OPAQUE_BLOCKED: Final[tuple[object, ...]] = (*TOKENS[:2], Block(opaque=True), *TOKENS[2:])
"""The standard script, blocked after two tokens on an awaitable that does not say what it awaits."""


async def _real_with_stop(
    target: ManagerTarget,
    ctx: CheckContext,
    items: tuple[object, ...],
    *,
    own_task: bool,
    pending: bool,
    message: str | None,
    real_first: bool,
) -> str | None:
    rig = await make_rig(target, ctx, items)
    seen = _Propagated()
    consumer = ctx.spawn(
        _consume(rig.manager, seen, own_task=own_task, pending=pending), name="lmstream consumer"
    )
    if pending:
        await ctx.settle()
        consumer.cancel()
    await until(ctx, lambda: rig.probe.blocked or consumer.done(), timeout=LATER)
    if not rig.probe.blocked:
        return f"the engine never blocked (the consumer: {consumer!r})"
    victim = seen.step if pending and seen.step is not None else consumer
    if real_first:
        victim.cancel(message)
        stop = ctx.spawn(aclose_of(rig.manager), name="lmstream stopper")
    else:
        stop = ctx.spawn(aclose_of(rig.manager), name="lmstream stopper")
        await asyncio.sleep(0)  # the stop has begun and interrupted the step
        victim.cancel(message)
    if not await ctx.wait_tasks([consumer], timeout=LATER):
        rig.probe.release()
        await ctx.wait_tasks([consumer, stop], timeout=LATER)
        return f"the consumer's task had not ended {seconds(LATER)} later"
    await ctx.wait_tasks([stop], timeout=LATER)
    if not consumer.cancelled():
        raised = consumer.exception()
        outcome = "returned" if raised is None else f"raised {describe_exception(raised)}"
        return f"the consumer's task did not end with CancelledError: it {outcome}"
    error = seen.error
    if error is None:
        return "the real cancellation was lost: the loop ended without CancelledError"
    wanted_args: tuple[object, ...] = (message,) if message is not None else ()
    if error.args != wanted_args:
        return f"the CancelledError the consumer got carried {error.args!r}, not {wanted_args!r}"
    wanted_count = 2 if pending else 1
    if _PY311 and seen.count is not None and seen.count != wanted_count and not (pending and own_task):
        return f"while it propagated, the consumer task's cancelling() was {seen.count}, not {wanted_count}"
    return None


# ---------------------------------------------------------------------------------------------- swallowed
@dataclass
class _Swallower:
    """An engine that breaks ES-6: at its block it swallows a cancellation, then yields one more token."""

    blocked: bool = False
    swallowed: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(self) -> AsyncGenerator[str, None]:
        yield TOKENS[0]
        yield TOKENS[1]
        self.blocked = True
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.swallowed += 1
        self.blocked = False
        yield "late"
        yield "later"


@check(
    "SM-26",
    _MANAGER,
    summary="aclose() of an engine that swallows the stop's cancellation leaves the task uncancelled",
)
async def stop_of_an_engine_that_swallows_it_leaves_the_task_uncancelled(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    engine = _Swallower()
    lock = CountingLock()
    manager: Any = construct(target, engine.stream(), ROLE, lock=lock)
    if not callable(getattr(manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    view: dict[str, object] = {}

    async def consume() -> None:
        task = asyncio.current_task()
        view["before"] = _cancelling(task)
        try:
            async for _ in manager:
                pass
        except Exception as exc:  # how the loop ends is SM-24's to judge
            view["loop"] = exc
        view["after"] = _cancelling(task)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            view["surfaced"] = True
            raise

    consumer = ctx.spawn(consume(), name="lmstream consumer")
    if not await until(ctx, lambda: engine.blocked or consumer.done(), timeout=LATER) or not engine.blocked:
        raise CheckSkipped("the manager never read the engine up to its block (see the SM-1 to SM-17 checks)")
    stop = ctx.spawn(aclose_of(manager), name="lmstream stopper")
    if not await ctx.wait_tasks([consumer], timeout=LATER):
        engine.gate.set()
        await ctx.wait_tasks([consumer], timeout=LATER)
    await ctx.wait_tasks([stop], timeout=LATER)
    if not engine.swallowed:
        ctx.note("the stop did not cancel the engine, nothing was swallowed (SM-24): judged all the same")
    problem: str | None = None
    if (consumer.done() and consumer.cancelled()) or view.get("surfaced"):
        problem = "a CancelledError surfaced in the consumer's task after its loop ended"
    elif _PY311 and view.get("after") != view.get("before"):
        before, after = view.get("before"), view.get("after")
        problem = f"the consumer task's cancelling() was {before} before and {after} after its loop"
    if problem is not None:
        raise CheckFailure(
            f"aclose() from another task while the engine was blocked; the engine swallowed the cancellation "
            f"and yielded a token (it breaks ES-6): {problem}",
            expected="a stop never leaves the consumer's task cancelled, whatever the engine does with it",
            reproduction=_swallow_reproduction(ctx),
        )


def _swallow_reproduction(ctx: CheckContext) -> str:
    imports, expression = ctx.target_reference()
    return script(
        imports,
        [
            "blocked = asyncio.Event()",
            "async def engine():",
            f"    yield {TOKENS[0]!r}",
            "    blocked.set()",
            "    try:",
            "        await asyncio.Event().wait()",
            "    except asyncio.CancelledError:",
            "        pass  # swallowed: the engine breaks ES-6",
            "    yield 'late'",
            f"manager = {expression}(engine(), {ROLE!r})",
            "async def consume():",
            "    async for token in manager:",
            "        pass",
            "    print(asyncio.current_task().cancelling())  # 0",
            "    await asyncio.sleep(0)  # no CancelledError here",
            "consumer = asyncio.create_task(consume())",
            "await blocked.wait()",
            "await asyncio.wait_for(manager.aclose(), 1)",
            "await asyncio.wait([consumer], timeout=1)",
            "print(consumer.cancelled())  # False",
        ],
    )
