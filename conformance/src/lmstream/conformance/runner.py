"""Run checks against a target: one check -> :class:`CheckResult`, a kind's checks -> :class:`Report`.

The command line and the pytest plugin both call these functions; there is one implementation of each
check and one way of running it.

**Never hangs.** Each check runs in its own fresh event loop (asyncio debug mode on, so never-awaited
coroutines and slow callbacks surface), bounded by ``timeout`` (``T``). A target that does not react to
the check's own timeouts is cancelled at ``T + G/2``, where ``G`` is the *grace*
(:func:`default_grace`: ``min(0.5, max(0.05, T/4))`` seconds), and abandoned at ``T + G`` if it swallows
the cancellation; every leftover task is then cancelled and awaited up to the same deadline, async
generators left open are closed, and whatever remains is reported in the result. A target that blocks the
loop synchronously (``time.sleep``, a busy loop) is interrupted by a ``SIGALRM`` watchdog on the main thread
(not available off the main thread or on Windows: there such a target is not bounded). So **a target that
hangs in every way is reported within N x (T + G) + N x epsilon**, N the number of checks and epsilon a
few short cleanup slices (20 ms each) plus, for a synchronously blocking target, the watchdog's slack
(``max(0.05, G/2)``) per interruption. With the defaults (T = 2 s, G = 0.5 s) and the 11 engine checks
that is under 30 s.

**Never lies, never litters.** A target that raises inside a check fails that check, with the exception
summarised (type, message, the frame that raised it), never the run. Warnings, asyncio's complaints and
unraisable exceptions during a check are captured and reported with its result, never printed. The suite
starts no thread; threads the target leaves running are reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Final

from lmstream.spec import get_requirement

from ._isolation import IsolatedRun, TargetExited, require_sync, run_isolated
from ._leftovers import once_per_run
from ._watchdog import TargetBlocked
from .checks import checks_for
from .context import CheckContext
from .describe import describe_exception, seconds
from .links import spec_url
from .model import Check, CheckFailure, CheckResult, CheckSkipped, Outcome, Report, TargetKind
from .prompt import STANDARD_PROMPT
from .selection import compile_selection
from .targets import Target, load_messages, resolve_target

__all__ = ["DEFAULT_TIMEOUT", "default_grace", "format_failure", "run_check", "run_checks"]

DEFAULT_TIMEOUT: Final = 2.0
"""The default budget of one check, in seconds."""


def default_grace(timeout: float) -> float:
    """How long a target gets to react to a cancellation: ``min(0.5, max(0.05, timeout / 4))`` seconds."""
    return min(0.5, max(0.05, timeout / 4))


def format_failure(requirement_id: str, observed: str, expected: str | None = None) -> str:
    """The message of a failed result: ``expected:``, ``observed:`` and ``spec:`` lines."""
    requirement = get_requirement(requirement_id)
    return "\n".join(
        [
            f"expected: {expected or requirement.statement}",
            f"observed: {observed}",
            f"spec: {spec_url(requirement_id)}",
        ]
    )


def run_check(
    check: Check,
    target: object,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    grace: float | None = None,
    messages: Sequence[object] | str | None = None,
    target_name: str | None = None,
) -> CheckResult:
    """Run one check against ``target`` in a fresh event loop and return its result.

    :param target: an object of the check's kind, a validated target, or a ``"module:attribute"`` string.
    :param timeout: the check's budget in seconds (> 0).
    :param grace: see the module docstring; default :func:`default_grace`.
    :param messages: the prompt for engine checks (a sequence of messages, or ``"module:attribute"`` naming
        one or a zero-argument callable returning one); default :data:`~lmstream.conformance.STANDARD_PROMPT`.
    :param target_name: how to name the target in messages and reproduction snippets.
    :raises TargetError: when ``target`` is not a valid target of the check's kind.
    :raises RuntimeError: when called from a running event loop (call it from synchronous code).
    """
    require_sync("lmstream checks (run_check, run_checks)")
    _require_positive(timeout)
    resolved = resolve_target(check.kind, target, name=target_name)
    prompt, prompt_name = _prompt(messages)
    return _run_resolved(check, resolved, timeout, grace, prompt, prompt_name, target_name or resolved.name)


def run_checks(
    kind: TargetKind,
    target: object,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    grace: float | None = None,
    select: str | Callable[[Check], bool] | None = None,
    messages: Sequence[object] | str | None = None,
    target_name: str | None = None,
    checks: Iterable[Check] | None = None,
) -> Report:
    """Run every check of ``kind`` (or those ``select`` keeps) against ``target``; return the report.

    :param select: a ``-k`` expression (see :mod:`lmstream.conformance.selection`) or a predicate.
    :param checks: the checks to choose from; default every registered check of ``kind``.
    :param messages: as for :func:`run_check`.
    :raises TargetError: when ``target`` is not a valid target of this kind, or ``messages`` cannot be
        loaded.
    :raises SelectionError: when ``select`` is a malformed expression.
    """
    require_sync("lmstream checks (run_check, run_checks)")
    _require_positive(timeout)
    keep = compile_selection(select) if isinstance(select, str) else select
    chosen = [c for c in (checks_for(kind) if checks is None else checks) if c.kind is kind]
    if keep is not None:
        chosen = [c for c in chosen if keep(c)]
    resolved = resolve_target(kind, target, name=target_name)
    name = target_name or resolved.name
    prompt, prompt_name = _prompt(messages)
    results = [_run_resolved(c, resolved, timeout, grace, prompt, prompt_name, name) for c in chosen]
    messages = once_per_run([r.message for r in results])  # a library's leftovers: one note per run
    results = [replace(r, message=m) if m != r.message else r for r, m in zip(results, messages, strict=True)]
    return Report(kind=kind, target=name, results=tuple(results))


def _prompt(messages: Sequence[object] | str | None) -> tuple[Sequence[object], str | None]:
    if messages is None:
        return STANDARD_PROMPT, None
    if isinstance(messages, str):
        return load_messages(messages)
    return messages, None


def _require_positive(timeout: float) -> None:
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


def _run_resolved(
    check: Check,
    target: Target,
    timeout: float,
    grace: float | None,
    messages: Sequence[object],
    messages_name: str | None,
    target_name: str,
) -> CheckResult:
    grace = default_grace(timeout) if grace is None else grace
    ctx = CheckContext(
        timeout=timeout, grace=grace, messages=messages, target_name=target_name, messages_name=messages_name
    )

    async def run_the_check() -> None:
        try:
            await check.run(target, ctx)
        except SystemExit as exc:  # a task that raises SystemExit would stop the loop: keep it in the check
            raise TargetExited(exc) from exc

    run = run_isolated(
        run_the_check,
        ctx,
        timeout=timeout,
        grace=grace,
        name=f"lmstream check {check.requirement_id} {check.name}",
    )
    return _result(check, ctx, run, timeout)


def _result(check: Check, ctx: CheckContext, run: IsolatedRun, timeout: float) -> CheckResult:
    notes = [f"note: {line}" for line in [*ctx.notes, *run.problems]]
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
        observed = f"the target raised {describe_exception(run.stopped_by)}, which stopped the event loop"
    elif run.finished and error is None:
        return CheckResult(check, Outcome.PASSED, "\n".join(notes), duration=run.elapsed)
    elif isinstance(error, TargetBlocked) or (run.blocked_at and not run.finished):
        where = run.blocked_at[0] if run.blocked_at else "an unknown place"
        observed = (
            f"the target blocked the event loop synchronously (time.sleep, blocking I/O or a busy loop?) at "
            f"{where}, past the check's deadline of {seconds(timeout)}; the suite's watchdog interrupted it"
        )
    elif run.cancelled_by_runner:
        waited = run.waiting_for or "something the check did not name"
        observed = f"the check did not finish within {seconds(timeout)}: it was waiting for {waited}"
        if not run.finished:
            observed += "; the target ignored the cancellation, and the check was abandoned"
    elif isinstance(error, TargetExited) and error.__cause__ is not None:
        observed = f"the target raised {describe_exception(error.__cause__)} (sys.exit()?) inside the check"
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
