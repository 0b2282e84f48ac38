"""CheckContext: bounded waits give up in time and say why; cleanup helpers never hold a check up."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lmstream.conformance import Check, CheckContext, CheckTimeout, Outcome, TargetKind, run_check
from lmstream.conformance.examples import EchoEngine

Body = Callable[[CheckContext], Awaitable[None]]


@pytest.fixture
def in_check() -> Callable[[Body], list[object]]:
    """Run ``body(ctx)`` as an ad hoc check (1 s budget); return what it recorded, asserting it passed."""
    count = [0]

    def run(body: Body) -> list[object]:
        record: list[object] = []

        async def the_check(target: object, ctx: CheckContext) -> None:
            record.append(ctx)
            await body(ctx)

        count[0] += 1
        made = Check(f"ad_hoc_{count[0]}", "ES-8", TargetKind.ENGINE, the_check, "ad hoc")
        result = run_check(made, EchoEngine, timeout=1.0)
        assert result.outcome is Outcome.PASSED, result.message
        record.append(result)
        return record

    return run


def test_bounded_returns_the_result(in_check: Callable[[Body], list[object]]) -> None:
    async def body(ctx: CheckContext) -> None:
        assert await ctx.bounded(asyncio.sleep(0, "done"), what="a nap") == "done"
        assert ctx.waiting_for is None and 0 <= ctx.elapsed() < 1.0 and 0 < ctx.remaining() <= 1.0

    in_check(body)


def test_bounded_gives_up_and_says_what_it_waited_for(in_check: Callable[[Body], list[object]]) -> None:
    async def body(ctx: CheckContext) -> None:
        task = asyncio.current_task()
        assert task is not None
        before = task.cancelling() if sys.version_info >= (3, 11) else 0
        with pytest.raises(CheckTimeout) as info:
            await ctx.bounded(asyncio.Event().wait(), what="the event", timeout=0.05)
        assert info.value.what == "the event" and 0.04 < info.value.waited < 0.5
        assert info.value.observed.startswith("waited 0.05 s for the event")
        if sys.version_info >= (3, 11):
            assert task.cancelling() == before  # the bounded wait's own cancel is undone
        await asyncio.sleep(0)  # and no cancellation is left pending

    in_check(body)


def test_bounded_reports_a_swallowed_or_replaced_cancellation(
    in_check: Callable[[Body], list[object]],
) -> None:
    async def swallows() -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return "anyway"

    async def replaces() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("nope") from None

    async def body(ctx: CheckContext) -> None:
        with pytest.raises(
            CheckTimeout, match="swallowed the cancellation and went on to return str 'anyway'"
        ):
            await ctx.bounded(swallows(), what="it", timeout=0.02)
        with pytest.raises(CheckTimeout, match="raised RuntimeError\\('nope'\\)"):
            await ctx.bounded(replaces(), what="it", timeout=0.02)

    in_check(body)


def test_bounded_lets_other_errors_and_outside_cancellations_through(
    in_check: Callable[[Body], list[object]],
) -> None:
    async def fails() -> None:
        raise ValueError("boom")

    async def body(ctx: CheckContext) -> None:
        with pytest.raises(ValueError, match="boom"):
            await ctx.bounded(fails(), what="it")
        inner = asyncio.ensure_future(ctx.bounded(asyncio.Event().wait(), what="forever"))
        await asyncio.sleep(0)
        inner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await inner

    in_check(body)


class _HangingClose:
    async def aclose(self) -> None:
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()


class _FailingClose:
    async def aclose(self) -> None:
        raise OSError("socket already closed")


def test_close_quietly_never_holds_the_check_up(in_check: Callable[[Body], list[object]]) -> None:
    async def body(ctx: CheckContext) -> None:
        assert not await ctx.close_quietly(object())  # nothing to close
        assert not await ctx.close_quietly(_FailingClose(), what="the socket")
        assert not await ctx.close_quietly(_HangingClose(), what="the hanging one")

    record = in_check(body)
    result: Any = record[-1]  # the check ran in a worker process: its notes come back in the message
    notes = [line for line in result.message.splitlines() if line.startswith("note: ")]
    assert any(
        "the socket (cleanup, not judged here) raised OSError('socket already closed')" in n for n in notes
    )
    assert any("aclose() had not returned after" in n for n in notes)
    assert "ignored cancellation and was abandoned" in result.message


def test_wait_tasks_and_settle(in_check: Callable[[Body], list[object]]) -> None:
    async def body(ctx: CheckContext) -> None:
        quick = ctx.spawn(asyncio.sleep(0), name="quick")
        slow = ctx.spawn(asyncio.Event().wait(), name="slow")
        assert await ctx.wait_tasks([quick])
        assert not await ctx.wait_tasks([quick, slow], timeout=0.02)
        assert ctx.spawned == frozenset({quick, slow})
        flag: list[int] = []
        asyncio.get_running_loop().call_soon(flag.append, 1)
        await ctx.settle(1)
        assert flag == [1]

    record = in_check(body)
    result: Any = record[-1]
    assert "slow" not in result.message  # the suite's own spawned tasks are cancelled silently
