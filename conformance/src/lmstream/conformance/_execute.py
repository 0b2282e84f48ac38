"""One check, run in this process: the job the worker does for each check.

:func:`prepare` imports and validates the target and the prompt (the first of the target's code to run);
:func:`execute` runs one check in a fresh event loop (:func:`~lmstream.conformance._isolation.run_isolated`)
and turns how it ended into a :class:`~lmstream.conformance.model.CheckResult`. Both run inside the worker
process (:mod:`lmstream.conformance._worker`) and know nothing of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._isolation import IsolatedRun, TargetExited, run_isolated
from .context import CheckContext
from .describe import describe_exception, seconds
from .model import Check, CheckFailure, CheckResult, CheckSkipped, Outcome, TargetKind, format_failure
from .prompt import STANDARD_PROMPT
from .targets import Target, load_messages, resolve_target

__all__ = ["Prepared", "execute", "prepare"]

_LOOP_STOPPED = "Event loop stopped before Future completed."


@dataclass(frozen=True)
class Prepared:
    """A validated target and the prompt, ready for :func:`execute`."""

    target: Target
    name: str
    messages: Sequence[object]
    messages_name: str | None


def prepare(
    kind: TargetKind, target: object, *, name: str | None, messages: Sequence[object] | str | None
) -> Prepared:
    """Import (for a ``"module:attribute"`` string) and validate the target, and load the prompt.

    :raises TargetError: when either cannot be imported or is not what is expected.
    """
    resolved = resolve_target(kind, target, name=name)
    if messages is None:
        prompt: Sequence[object] = STANDARD_PROMPT
        prompt_name = None
    elif isinstance(messages, str):
        prompt, prompt_name = load_messages(messages)
    else:
        prompt, prompt_name = messages, None
    return Prepared(resolved, name or resolved.name, prompt, prompt_name)


def execute(
    check: Check,
    prepared: Prepared,
    *,
    timeout: float,
    grace: float,
    on_loop: Callable[[asyncio.AbstractEventLoop], object] | None = None,
) -> CheckResult:
    """Run ``check`` against the prepared target in a fresh event loop; never raises for the target."""
    ctx = CheckContext(
        timeout=timeout,
        grace=grace,
        messages=prepared.messages,
        target_name=prepared.name,
        messages_name=prepared.messages_name,
    )

    async def run_the_check() -> None:
        try:
            await check.run(prepared.target, ctx)
        except (Exception, asyncio.CancelledError):
            raise
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...: keep it inside the check
            if isinstance(exc, GeneratorExit) and not _in_a_running_loop():
                raise  # close() of an abandoned check's coroutine, at garbage collection: let it close
            raise TargetExited(exc) from exc

    run = run_isolated(
        run_the_check,
        ctx,
        timeout=timeout,
        grace=grace,
        name=f"lmstream check {check.requirement_id} {check.name}",
        on_loop=on_loop,
    )
    return _result(check, run, ctx.notes, timeout)


def _result(check: Check, run: IsolatedRun, ctx_notes: list[str], timeout: float) -> CheckResult:
    notes = [f"note: {line}" for line in [*ctx_notes, *run.problems]]
    error = run.exception
    rid = check.requirement_id
    if isinstance(error, CheckSkipped):
        return CheckResult(check, Outcome.SKIPPED, "\n".join([error.reason, *notes]), duration=run.elapsed)
    if isinstance(error, CheckFailure):
        message = format_failure(rid, error.observed, error.expected)
        return CheckResult(
            check, Outcome.FAILED, "\n".join([message, *notes]), error.reproduction, run.elapsed
        )
    if run.stopped_by is not None:
        observed = _stopped(run.stopped_by)
    elif run.finished and error is None:
        return CheckResult(check, Outcome.PASSED, "\n".join(notes), duration=run.elapsed)
    elif run.cancelled_by_runner:
        waited = run.waiting_for or "something the check did not name"
        observed = f"the check did not finish within {seconds(timeout)}: it was waiting for {waited}"
        if not run.finished:
            observed += "; the target ignored the cancellation, and the check was abandoned"
    elif isinstance(error, TargetExited) and error.__cause__ is not None:
        cause = error.__cause__
        hint = " (sys.exit()?)" if isinstance(cause, SystemExit) else ""
        observed = (
            f"the target raised {describe_exception(cause)}{hint} inside the check; a "
            f"{type(cause).__name__} is not an Exception, and the suite kept it inside the check"
        )
    elif isinstance(error, asyncio.CancelledError):
        observed = (
            "the check's task was cancelled, not by the suite: the target raised CancelledError on its own"
        )
    elif error is not None:
        observed = f"the target raised {describe_exception(error)}"
    else:  # pragma: no cover - a task neither finished nor cancelled by the runner cannot exist
        observed = "the check did not finish"
    message = format_failure(rid, observed)
    return CheckResult(check, Outcome.FAILED, "\n".join([message, *notes]), duration=run.elapsed)


def _in_a_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _stopped(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) and str(exc) == _LOOP_STOPPED:
        return "the target stopped the suite's event loop (loop.stop()) before the check ended"
    if isinstance(exc, asyncio.CancelledError):
        return "the target cancelled the suite's own task (did it cancel every task?), which stopped the loop"
    return f"the target raised {describe_exception(exc)}, which stopped the event loop"
