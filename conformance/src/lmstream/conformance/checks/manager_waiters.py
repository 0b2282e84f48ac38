"""The manager checks of concurrent waiters (SM-7): 1, 2 and 50 tasks calling ``completion()``,
``message()`` or awaiting the manager, before, during and after iteration, each get one and the same
object per method. Waiters that hang are given
:func:`~lmstream.conformance.checks._manager_support.waiter_bound` seconds, and the message says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lmstream.conformance.context import CheckContext
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import describe_item

from ._manager_support import (
    RESULT_METHODS,
    TOKENS,
    ResultMethod,
    Waiter,
    build,
    call_name,
    collect,
    consume,
    describe_waiters,
    first_done,
    manager_reproduction,
    spawn_labelled,
    wait_result,
    waiter_bound,
)
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER

READ = [
    "tokens = []",
    "async for token in manager:",
    "    tokens.append(token)",
]
"""The reproduction lines that read the manager to its end."""
_COUNTS = (1, 2, 50)
"""How many concurrent waiters each check starts, each count on a fresh manager."""


# ---------------------------------------------------------------------------------------------- SM-7
def _sameness(
    waiters: Sequence[Waiter],
    later: dict[ResultMethod, object],
    bound: float,
    since: str = "the consumer's loop ended",
) -> list[str]:
    """Problems with the waiters' results: every caller of one method must get one and the same object
    (``later``: what a call after the end returned, per method)."""
    problems: list[str] = []
    failed = [w for w in waiters if w.outcome is None or w.outcome.pending or w.outcome.error is not None]
    if failed:
        return [describe_waiters(failed, bound, since=since)]
    for method in RESULT_METHODS:
        values = [w.outcome.value for w in waiters if w.method == method and w.outcome is not None]
        if method in later:
            values.append(later[method])
        distinct: list[object] = []
        for value in values:
            if not any(value is seen for seen in distinct):
                distinct.append(value)
        if len(distinct) > 1:
            shown = ", ".join(describe_item(v, limit=40) for v in distinct[:3])
            problems.append(
                f"{len(values)} calls of {call_name(method)} got {len(distinct)} different objects ({shown})"
            )
    return problems


def _sm7_failure(
    ctx: CheckContext, when: str, count: int, problems: list[str], body: list[str]
) -> CheckFailure:
    return CheckFailure(
        f"{count} concurrent waiter(s) {when}: {'; '.join(problems)}",
        expected="every caller of completion() (of message(), of await), from any task, before, during or "
        "after iteration, gets the same object",
        reproduction=manager_reproduction(ctx, TOKENS, body),
    )


_GATHER = [
    "calls = [manager.completion(), manager.message(), manager] * {count}",
    "results = await asyncio.wait_for(asyncio.gather(*calls), 1)",
    "print([len({{id(r) for r in results[i::3]}}) for i in range(3)])  # expect [1, 1, 1]",
]


@check(
    "SM-7",
    _MANAGER,
    summary="1, 2 and 50 concurrent waiters started before iteration (nobody iterates) get one object",
)
async def waiters_before_iteration_get_one_result(target: ManagerTarget, ctx: CheckContext) -> None:
    for count in _COUNTS:
        built = await build(target, ctx, TOKENS)
        waiters = _spawn(ctx, built.manager, count, "before iteration")
        waited = await first_done(ctx, waiters)  # one of them drives the stream to its end
        if any(w.task.done() for w in waiters):
            bound, since = await collect(ctx, waiters), "the first of them returned"
        else:  # none returned within the budget: they have had their time
            await collect(ctx, waiters, timeout=0.0)
            bound, since = waited, "they were started"
        if built.probe.requests == 0 and not any(w.outcome and w.outcome.value is not None for w in waiters):
            raise CheckSkipped(
                f"{count} waiter(s) started before iteration never read the stream: "
                f"{describe_waiters(waiters, bound, since=since)} (SM-6's check reports it)"
            )
        problems = _sameness(waiters, {}, bound, since=since)
        if problems:
            raise _sm7_failure(
                ctx,
                "started before iteration, nobody iterating",
                count,
                problems,
                [line.format(count=count) for line in _GATHER],
            )


@check(
    "SM-7",
    _MANAGER,
    summary="1, 2 and 50 waiters started during iteration get one object, as does a later call",
)
async def waiters_during_iteration_get_one_result(target: ManagerTarget, ctx: CheckContext) -> None:
    for count in _COUNTS:
        built = await build(target, ctx, TOKENS)
        waiters: list[Waiter] = []
        seen = await consume(ctx, built.manager, step=_spawner(ctx, built.manager, waiters, count))
        if seen.error is not None:
            raise CheckSkipped(
                f"the stream did not end normally ({seen.describe()}); SM-1's check reports it"
            )
        bound = await collect(ctx, waiters)
        later = await _later(ctx, built.manager)
        problems = _sameness(waiters, later, bound)
        if problems:
            raise _sm7_failure(
                ctx,
                "started after the first token",
                count,
                problems,
                [
                    "waiters = []",
                    "async for token in manager:",
                    "    if not waiters:",
                    f"        calls = [manager.completion(), manager.message(), manager] * {count}",
                    "        waiters = [asyncio.ensure_future(call) for call in calls]",
                    "results = await asyncio.wait_for(asyncio.gather(*waiters), 1)",
                    "print([len({id(r) for r in results[i::3]}) for i in range(3)])  # expect [1, 1, 1]",
                ],
            )


@check("SM-7", _MANAGER, summary="1, 2 and 50 concurrent waiters started after a full read get one object")
async def waiters_after_iteration_get_one_result(target: ManagerTarget, ctx: CheckContext) -> None:
    for count in _COUNTS:
        built = await build(target, ctx, TOKENS)
        seen = await consume(ctx, built.manager)
        if seen.error is not None:
            raise CheckSkipped(
                f"the stream did not end normally ({seen.describe()}); SM-1's check reports it"
            )
        waiters = _spawn(ctx, built.manager, count, "after iteration")
        bound = await collect(ctx, waiters)
        problems = _sameness(waiters, {}, bound, since="they were started")
        if problems:
            raise _sm7_failure(
                ctx,
                "started after a full read",
                count,
                problems,
                [*READ, *(line.format(count=count) for line in _GATHER)],
            )


def _spawner(
    ctx: CheckContext, manager: Any, waiters: list[Waiter], count: int
) -> Callable[[int], Awaitable[None]]:
    """A consumer step that starts ``count`` waiters once the first token has arrived."""

    async def step(received: int) -> None:
        if received == 1:
            waiters.extend(_spawn(ctx, manager, count, "during iteration"))
            await ctx.settle()

    return step


def _spawn(ctx: CheckContext, manager: Any, count: int, when: str) -> list[Waiter]:
    methods: list[ResultMethod] = [RESULT_METHODS[i % 3] for i in range(count)]
    waiters: list[Waiter] = []
    for index, method in enumerate(methods):
        waiters += spawn_labelled(ctx, manager, f"#{index + 1} {when}", (method,))
    return waiters


async def _later(ctx: CheckContext, manager: Any) -> dict[ResultMethod, object]:
    """What each result call returns after the end (calls that raise or hang are left out: the waiters
    show the same problem)."""
    found: dict[ResultMethod, object] = {}
    for method in RESULT_METHODS:
        outcome = await wait_result(ctx, manager, method, timeout=waiter_bound(ctx))
        if not outcome.pending and outcome.error is None:
            found[method] = outcome.value
    return found
