"""The checks of a stop made from inside the manager's own step: ``aclose()`` awaited from ``after``, from
the engine's own code (while it produces an item) and from the engine's cleanup (its ``finally``, run by the
manager's close after a break or under a stop from another task).

Such a call cannot wait for the step it is part of: it must return at once (SM-22), and the stop then takes
effect as SM-23 and SM-24 say. From ``after`` the engine stream has ended, so the stream completes as it
would have (SM-23). From the engine's code the consumer's loop ends at its next step without an exception,
no item after the stop is handed out and the engine is closed (SM-24). From the engine's cleanup the stream
was ending anyway; it must still end, and no result may hang (SM-22).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, describe_items, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamState, describe_item

from ._manager_support import ROLE, TOKENS, CountingLock, Outcome
from ._registry import check
from ._stop_consumers import Consumer, judge_incomplete, results_now
from ._stop_support import LATER, NO_ACLOSE, aclose_of, as_state, describe_state, state_of, terminal, until

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
Where = Literal["after", "code", "cleanup after a break", "cleanup under a stop"]
_WHERE: Final[dict[Where, str]] = {
    "after": "from after",
    "code": "from the engine's code, while it produced its third item",
    "cleanup after a break": "from the engine's cleanup, run by the manager's close after a break",
    "cleanup under a stop": "from the engine's cleanup, run by a stop from another task",
}


@dataclass
class _Call:
    """The ``aclose()`` made from inside: whether it returned, what it raised."""

    made: bool = False
    returned: bool = False
    error: BaseException | None = None


@dataclass
class _Inside:
    """One manager over an engine that can stop its own manager, and what happened."""

    where: Where
    manager: Any = None
    lock: CountingLock = field(default_factory=CountingLock)
    call: _Call = field(default_factory=_Call)
    requests: int = 0
    requests_at_stop: int = 0
    cleanup_ran: bool = False
    after_calls: list[object] = field(default_factory=list[object])

    async def stop(self) -> None:
        self.call.made = True
        self.requests_at_stop = self.requests
        try:
            await aclose_of(self.manager)
        except Exception as exc:
            self.call.error = exc
        self.call.returned = True

    async def stream(self) -> AsyncGenerator[str, None]:
        try:
            for index, token in enumerate(TOKENS):
                self.requests += 1
                await asyncio.sleep(0)
                if self.where == "code" and index == 2:
                    await self.stop()
                yield token
        finally:
            if self.where.startswith("cleanup"):
                await self.stop()
            self.cleanup_ran = True

    async def after(self, completion: object) -> None:
        self.after_calls.append(completion)
        if self.where == "after":
            await self.stop()


@dataclass
class _Run:
    inside: _Inside
    consumer: Consumer
    ended: bool
    results: list[tuple[str, Outcome]]
    state: object


async def _run(target: ManagerTarget, ctx: CheckContext, where: Where) -> _Run:
    inside = _Inside(where)
    try:
        inside.manager = target(inside.stream(), ROLE, after=inside.after, lock=inside.lock)
    except Exception as exc:
        raise CheckFailure(
            f"calling {target.name}(stream_iter, role, after=..., lock=...) raised {describe_exception(exc)}",
            expected="a manager (ManagerFactory: kani's StreamManager constructor signature)",
        ) from exc
    if not callable(getattr(inside.manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    body = None
    if where == "cleanup after a break":

        async def leave(count: int) -> None:
            if count == 2:
                raise _Break

        body = leave
    consumer = Consumer(
        ctx, inside.manager, body=body, pause_at=2 if where == "cleanup under a stop" else None
    )
    if where == "cleanup under a stop":
        await until(ctx, lambda: consumer.paused or consumer.ended, timeout=LATER)
        stopper = ctx.spawn(_stop_quietly(inside.manager), name="lmstream stopper")
        await ctx.wait_tasks([stopper], timeout=LATER)
        consumer.resume()
    ended = await ctx.wait_tasks([consumer.task], timeout=LATER)
    results = await results_now(ctx, inside.manager) if inside.call.returned or not inside.call.made else []
    await until(ctx, lambda: terminal(inside.manager), timeout=LATER)
    return _Run(inside, consumer, ended, results, state_of(inside.manager))


class _Break(Exception):
    """Raised in the consumer's loop body: it leaves the loop (the manager closes the engine)."""


async def _stop_quietly(manager: Any) -> None:
    """A stop from another task; what it raises is SM-22's business elsewhere, not judged here."""
    with contextlib.suppress(Exception):  # judged by the SM-22 checks of stops from other tasks
        await aclose_of(manager)


def _reproduction(ctx: CheckContext, where: Where) -> str:
    imports, expression = ctx.target_reference()
    code = ["            if i == 2:", "                await manager.aclose()  # from the engine's own code"]
    cleanup = ["        await manager.aclose()  # from the engine's cleanup"]
    after = ["    await manager.aclose()  # from after"]
    loop = ["async for token in manager:", "    print(repr(token))"]
    if where == "cleanup after a break":
        loop = ["async for token in manager:", "    break"]
    return script(
        imports,
        [
            f"tokens = {list(TOKENS)!r}",
            "async def engine():",
            "    try:",
            "        for i, token in enumerate(tokens):",
            *(code if where == "code" else []),
            "            yield token",
            "    finally:",
            *(cleanup if where.startswith("cleanup") else ["        pass"]),
            "async def after(completion):",
            *(after if where == "after" else ["    pass"]),
            f"manager = {expression}(engine(), {ROLE!r}, after=after)",
            "async def consume():",
            *(f"    {line}" for line in loop),
            "await asyncio.wait_for(consume(), 1)  # TimeoutError if the stop waits for its own step",
            "print(manager.state)",
            "print(await asyncio.gather(asyncio.wait_for(manager.completion(), 1), return_exceptions=True))",
        ],
    )


# ---------------------------------------------------------------------------------------------- SM-22
@check("SM-22", _MANAGER, summary="aclose() from after, the engine's code or its cleanup returns at once")
async def aclose_from_inside_its_own_step_returns_at_once(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "an aclose() made from inside the manager's own step (from after, from the engine's code or its "
        "cleanup) returns without waiting for that step, and the stop then takes effect: the stream ends, "
        "state terminal, and no result hangs"
    )
    for where in _WHERE:
        run = await _run(target, ctx, where)
        call = run.inside.call
        problem: str | None = None
        if not call.made:
            ctx.note(f"{_WHERE[where]}: the manager never got there ({run.consumer.describe()})")
            continue
        if not call.returned:
            problem = (
                f"aclose() had not returned {seconds(LATER)} later: it waited for the step it was made from"
            )
        elif call.error is not None:
            problem = f"aclose() raised {describe_exception(call.error)}"
        elif not terminal(run.inside.manager):
            problem = (
                f"the stream never ended: state was still {describe_state(run.state)} {seconds(LATER)} later"
            )
        else:
            pending = [f"{label} {o.describe()}" for label, o in run.results if o.pending]
            if pending:
                problem = "; ".join(pending) + f" after {seconds(LATER)}"
        if problem is not None:
            raise CheckFailure(
                f"aclose() {_WHERE[where]}: {problem}",
                expected=expected,
                reproduction=_reproduction(ctx, where),
            )


# ---------------------------------------------------------------------------------------------- SM-24
@check(
    "SM-24", _MANAGER, summary="aclose() from the engine's own code: the loop ends at its next step, cleanly"
)
async def stop_from_the_engine_code_ends_the_loop(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "a stop during iteration, even one made from the engine's own code, ends the consumer's loop at its "
        "next step without an exception and hands out no item the engine produced after it; the engine "
        "stream is closed, the lock released once, after never called, and every result raises "
        "StreamIncompleteError"
    )
    run = await _run(target, ctx, "code")
    inside = run.inside
    if not inside.call.made or not inside.call.returned:
        raise CheckSkipped("aclose() from the engine's code never returned (SM-22's check reports it)")
    consumer = run.consumer
    problem: str | None = None
    if not run.ended:
        problem = f"the consumer's loop had not ended {seconds(LATER)} after the stop ({consumer.describe()})"
    elif consumer.error is not None:
        problem = f"the consumer's loop raised {describe_exception(consumer.error)}"
    elif len(consumer.tokens) > 2:
        problem = f"the consumer's loop received {describe_items(consumer.tokens[2:])} after the stop"
    elif inside.requests > inside.requests_at_stop:
        more = inside.requests - inside.requests_at_stop
        problem = f"the manager went on reading the engine ({more} more request(s))"
    elif not await until(ctx, lambda: inside.cleanup_ran, timeout=LATER):
        problem = f"the engine stream had not been closed {seconds(LATER)} after the stop"
    elif inside.lock.releases > 1:  # one still held is SM-22's to report
        problem = f"the lock was {inside.lock.describe()}"
    elif inside.after_calls:
        problem = f"after was called, with {describe_item(inside.after_calls[0])}"
    else:
        problem = judge_incomplete(run.results)
    if problem is not None:
        raise CheckFailure(
            f"after aclose() {_WHERE['code']}: {problem}",
            expected=expected,
            reproduction=_reproduction(ctx, "code"),
        )


# ---------------------------------------------------------------------------------------------- SM-23
@check(
    "SM-23", _MANAGER, summary="aclose() from after changes nothing: the stream completes as it would have"
)
async def stop_from_after_changes_nothing(target: ManagerTarget, ctx: CheckContext) -> None:
    run = await _run(target, ctx, "after")
    inside = run.inside
    if not inside.call.made or not inside.call.returned:
        raise CheckSkipped(
            "aclose() from after was never made or never returned (see SM-13's and SM-22's checks)"
        )
    given = inside.after_calls[0]
    problems = _completed_problems(run, given)
    if problems:
        raise CheckFailure(
            f"after aclose() {_WHERE['after']}: " + "; ".join(problems),
            expected=(
                "once the engine stream has ended, a stop changes nothing, even one made from after: the "
                "consumer's loop ends normally with every token, every result is the completion after got, "
                "state ends completed"
            ),
            reproduction=_reproduction(ctx, "after"),
        )


def _completed_problems(run: _Run, given: object) -> Sequence[str]:
    problems: list[str] = []
    consumer = run.consumer
    if consumer.error is not None or consumer.text != "".join(TOKENS):
        problems.append(f"the consumer's loop: {consumer.describe()}")
    right = (given, getattr(given, "message", None))
    problems += [
        f"{label} {o.describe()}"
        for label, o in run.results
        if o.pending or o.error is not None or o.value not in right
    ]
    if as_state(run.state) is not StreamState.COMPLETED:  # its value: its type is SM-27's
        problems.append(f"state ended {describe_state(run.state)}")
    return problems
