"""The runner never hangs, never litters and never lets a target's noise reach the terminal."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from lmstream.conformance import (
    CheckContext,
    CheckFailure,
    Outcome,
    TargetKind,
    checks_for,
    default_grace,
    run_check,
    run_checks,
)
from lmstream.conformance._supervisor import hard_deadline
from lmstream.conformance.examples import EchoEngine
from lmstream.conformance.model import Check

from ._engines import BlocksSynchronously, HangsEverywhere

T = 0.2
"""Seconds per check for the hanging targets."""

_NOISE = ("Task was destroyed", "never awaited", "Exception ignored", "Traceback")


def _bound(n_checks: int, per_check_extra: float) -> float:
    return n_checks * (T + default_grace(T) + per_check_extra)


@pytest.mark.usefixtures("no_new_threads")
def test_a_target_that_hangs_in_every_way_is_reported_in_bounded_time(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Never yields, swallows every cancellation, hangs in aclose: N x (T + G) plus a few 20 ms slices."""
    n = len(checks_for(TargetKind.ENGINE))
    started = time.monotonic()
    report = run_checks(TargetKind.ENGINE, HangsEverywhere, timeout=T)
    elapsed = time.monotonic() - started
    assert elapsed < _bound(n, 0.1), elapsed
    failed = {r.requirement_id for r in report.results if r.outcome is Outcome.FAILED}
    assert {"ES-2", "ES-5", "ES-6", "ES-8"} <= failed
    (es8,) = [r for r in report.results if r.requirement_id == "ES-8"]
    assert "did not finish within 0.20 s: it was waiting for the first item" in es8.message
    assert "ignored the cancellation" in es8.message
    out, err = capfd.readouterr()
    assert not any(word in out + err for word in _NOISE), out + err


RESTART = 0.5
"""A generous bound on starting a fresh worker (a fork, and the target's import again)."""


@pytest.mark.usefixtures("no_new_threads")
def test_a_target_that_blocks_the_loop_is_stopped_at_the_hard_deadline(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """time.sleep(30) in __anext__: each check fails at its hard deadline, saying where, and the next
    check runs in a fresh worker. No signal is used, so nothing of the caller's (pytest-timeout) moves."""
    n = len(checks_for(TargetKind.ENGINE))
    started = time.monotonic()
    report = run_checks(TargetKind.ENGINE, BlocksSynchronously, timeout=T)
    elapsed = time.monotonic() - started
    assert elapsed < n * (hard_deadline(T, default_grace(T)) + RESTART), elapsed
    blocked = [r for r in report.results if "without returning to the event loop" in r.message]
    assert len(blocked) >= n - 1, [r.message for r in report.results]  # ES-1 does not iterate
    assert all(r.outcome is Outcome.FAILED for r in blocked)
    assert "_engines.py" in blocked[0].message and "in __anext__" in blocked[0].message
    assert "the suite stopped the process at the check's hard deadline" in blocked[0].message
    out, err = capfd.readouterr()
    assert not any(word in out + err for word in _NOISE), out + err


def _ad_hoc(name: str, run: Any) -> Check:
    """A check made for one test (not registered: run_check runs any Check)."""
    return Check(name=name, requirement_id="ES-8", kind=TargetKind.ENGINE, run=run, summary="ad hoc")


@pytest.fixture
def ad_hoc_checks() -> Any:
    return _ad_hoc


def test_target_noise_is_captured_and_reported_not_printed(
    ad_hoc_checks: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    async def leaves_things_behind(target: object, ctx: CheckContext) -> None:
        async def forever() -> None:
            await asyncio.Event().wait()

        async def never_awaited() -> None:
            return None

        _ = asyncio.get_running_loop().create_task(forever(), name="left running")
        coro = never_awaited()
        del coro  # the point: a coroutine that is never awaited
        time.sleep(0.15)  # noqa: ASYNC251 - a slow callback, which debug mode reports

    made = ad_hoc_checks("leaves_things_behind", leaves_things_behind)
    result = run_check(made, EchoEngine, timeout=1.0)
    assert result.outcome is Outcome.PASSED
    assert "task 'left running' (" in result.message and "the suite cancelled it" in result.message
    assert "RuntimeWarning: coroutine" in result.message and "never awaited" in result.message
    assert (
        "a step of task 'lmstream check ES-8 leaves_things_behind' blocked the event loop for 0.1"
        in result.message
    )
    out, err = capfd.readouterr()
    assert not any(word in out + err for word in _NOISE), out + err


def test_an_exception_in_a_check_fails_that_check_with_its_origin(ad_hoc_checks: Any) -> None:
    async def raises(target: object, ctx: CheckContext) -> None:
        raise KeyError("usage")

    result = run_check(ad_hoc_checks("raises_key_error", raises), EchoEngine)
    assert result.outcome is Outcome.FAILED
    assert "the target raised KeyError('usage') raised at" in result.message
    assert "test_runner.py:" in result.message and "in raises" in result.message


def test_a_check_failure_becomes_expected_observed_and_a_link(ad_hoc_checks: Any) -> None:
    async def fails(target: object, ctx: CheckContext) -> None:
        raise CheckFailure("saw this", expected="that", reproduction="print(1)")

    result = run_check(ad_hoc_checks("fails_plainly", fails), EchoEngine)
    assert result.message.splitlines()[:2] == ["expected: that", "observed: saw this"]
    assert result.message.splitlines()[2].endswith("/spec.html#es-8")
    assert result.reproduction == "print(1)"


def test_a_spontaneous_cancellation_is_reported(ad_hoc_checks: Any) -> None:
    async def cancelled(target: object, ctx: CheckContext) -> None:
        raise asyncio.CancelledError

    result = run_check(ad_hoc_checks("cancels_itself", cancelled), EchoEngine)
    assert result.outcome is Outcome.FAILED and "not by the suite" in result.message


def test_a_thread_left_running_is_reported(ad_hoc_checks: Any) -> None:
    release = threading.Event()

    async def starts_a_thread(target: object, ctx: CheckContext) -> None:
        threading.Thread(target=release.wait, name="engine-worker", daemon=True).start()

    try:
        result = run_check(ad_hoc_checks("starts_a_thread", starts_a_thread), EchoEngine)
    finally:
        release.set()
    assert result.outcome is Outcome.PASSED and "thread 'engine-worker'" in result.message


async def test_the_runner_refuses_to_run_inside_an_event_loop() -> None:
    with pytest.raises(RuntimeError, match="synchronous code"):
        run_checks(TargetKind.ENGINE, EchoEngine)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf"), 1e20, 0.001])
def test_a_timeout_out_of_range_is_refused(timeout: float) -> None:
    with pytest.raises(
        ValueError, match=r"the timeout must be a finite number of seconds from 0\.01 to 3600"
    ):
        run_checks(TargetKind.ENGINE, EchoEngine, timeout=timeout)


def test_select_keeps_only_matching_checks() -> None:
    report = run_checks(TargetKind.ENGINE, EchoEngine, select="ES-3 or cancel")
    assert [r.requirement_id for r in report.results] == ["ES-3", "ES-6"]
    report = run_checks(TargetKind.ENGINE, EchoEngine, select=lambda c: c.level.value == "MAY")
    assert [r.requirement_id for r in report.results] == ["ES-11"]


def test_an_author_prompt_reaches_the_engine() -> None:
    from lmstream.reference import ChatMessage

    report = run_checks(
        TargetKind.ENGINE, EchoEngine, select="ES-11", messages=[ChatMessage("user", "one two")]
    )
    assert "yielded 2 token(s)" in report.results[0].message


def test_sys_exit_in_a_check_fails_that_check_only(ad_hoc_checks: Any) -> None:
    async def exits(target: object, ctx: CheckContext) -> None:
        raise SystemExit(3)

    async def exits_in_another_task(target: object, ctx: CheckContext) -> None:
        async def bye() -> None:
            raise SystemExit(4)

        await ctx.wait_tasks([ctx.spawn(bye(), name="bye")])

    result = run_check(ad_hoc_checks("exits", exits), EchoEngine)
    assert result.outcome is Outcome.FAILED and "the target raised SystemExit(3)" in result.message
    result = run_check(ad_hoc_checks("exits_elsewhere", exits_in_another_task), EchoEngine, timeout=0.3)
    assert result.outcome is Outcome.FAILED
    assert "SystemExit(4)" in result.message and "stopped the event loop" in result.message
    assert "lmstream runner" not in result.message
