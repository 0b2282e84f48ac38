"""Shared steps of the stop checks (SM-21 to SM-28), the consumer's side: a scripted consumer looping over
the manager in a task of its own (:class:`Consumer`), a stop of its loop while the engine is blocked
(:func:`stop_while_blocked`, with :class:`BlockedStop` telling how it went), and the waiters on the
manager's result, started before or after a stop, with how they ended. They record what the manager does
for the checks to judge (who judges what: :mod:`._stop_support`); only :func:`wait_until_blocked` raises,
skipping the check when there is no blocked engine to stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, describe_items, seconds
from lmstream.conformance.model import CheckSkipped
from lmstream.spec import StreamIncompleteError

from ._manager_support import RESULT_METHODS, Outcome, call_name, outcomes, spawn_waiters
from ._stop_support import LATER, PROMPT, Rig, Snapshot, spawn_stoppers, until

__all__ = [
    "BlockedStop",
    "Consumer",
    "incomplete_errors",
    "judge_incomplete",
    "pending_outcomes",
    "results_now",
    "spawn_pending",
    "stop_while_blocked",
    "wait_until_blocked",
]


# ---------------------------------------------------------------------------------------------- consumers
class Consumer:
    """A scripted consumer in a task of its own: ``async for token in manager``, recording each token and
    how the loop ended. The exception the loop raised (``CancelledError`` included) is recorded, not
    propagated, unless ``reraise_cancel`` (then a ``CancelledError`` ends the task cancelled).

    :param pause_at: after this many tokens, wait in the loop body until :meth:`resume` (the consumer is
        then "busy in its loop body"); :attr:`paused` tells when it got there.
    :param body: awaited in the loop body after every token with the count so far (e.g. a stop from the
        consumer's own task).
    :param start: called first thing in the consumer's task (e.g. to read its cancellation count).
    :param then: awaited after the loop ended, in the same task (e.g. to look at the task's cancellation).
    """

    def __init__(
        self,
        ctx: CheckContext,
        manager: Any,
        *,
        pause_at: int | None = None,
        body: Callable[[int], Awaitable[None]] | None = None,
        start: Callable[[], object] | None = None,
        then: Callable[[], Awaitable[None]] | None = None,
        reraise_cancel: bool = False,
        name: str = "lmstream consumer",
    ) -> None:
        self.tokens: list[object] = []
        self.error: BaseException | None = None
        self.ended = False
        self.ended_at: float | None = None
        self.paused = False
        self._resume = asyncio.Event()
        self._manager = manager
        self._pause_at = pause_at
        self._body = body
        self._start = start
        self._then = then
        self._reraise = reraise_cancel
        self.task: asyncio.Task[None] = ctx.spawn(self._run(), name=name)

    def resume(self) -> None:
        """Let a paused consumer go on to its next step."""
        self._resume.set()

    @property
    def text(self) -> str:
        """The concatenation of the ``str`` tokens received."""
        return "".join(t for t in self.tokens if isinstance(t, str))

    def describe(self) -> str:
        """``2 token(s) ' Hel', 'lo'; the loop ended normally`` (or raised, or had not ended)."""
        seen = f"{len(self.tokens)} token(s): {describe_items(self.tokens)}" if self.tokens else "no token"
        if not self.ended:
            return f"{seen}; the loop had not ended"
        if self.error is not None:
            return f"{seen}; the loop raised {describe_exception(self.error)}"
        return f"{seen}; the loop ended normally"

    async def _run(self) -> None:
        if self._start is not None:
            self._start()
        try:
            async for token in self._manager:
                self.tokens.append(token)
                if self._body is not None:
                    await self._body(len(self.tokens))
                if self._pause_at is not None and len(self.tokens) == self._pause_at:
                    self.paused = True
                    await self._resume.wait()
                    self.paused = False
        except (Exception, asyncio.CancelledError) as exc:
            self.error = exc
            if self._reraise and isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.ended = True
            try:
                self.ended_at = asyncio.get_running_loop().time()
            except RuntimeError:  # closed by the collector after the loop was gone (a task left behind)
                self.ended_at = None
        if self._then is not None:
            await self._then()


@dataclass
class BlockedStop:
    """How a stop of a loop blocked in the engine went (see :func:`stop_while_blocked`)."""

    consumer: Consumer
    stoppers: list[asyncio.Task[Snapshot]]
    prompt: bool
    """The loop ended within :data:`PROMPT` of the stop, the engine never released by the check."""
    waited: float
    """Seconds from the stop to the loop's end (or until the check gave up waiting)."""
    released: bool
    """The check had to release the engine for the loop to end."""

    def note(self) -> str:
        """The note a check other than SM-24's makes when it had to release the engine."""
        return (
            f"the consumer's loop had not ended {seconds(PROMPT)} after aclose() while the engine was "
            "blocked (SM-24's check reports it); the engine was then released"
        )


async def wait_until_blocked(ctx: CheckContext, rig: Rig, consumer: Consumer) -> None:
    """Wait until the consumer has made the manager request the item the engine blocks at.

    :raises CheckSkipped: when it does not get there (the manager does not read the engine as SM-1 and
        SM-2 say, or the loop ended): there is no blocked engine to stop.
    """
    if not await until(ctx, lambda: rig.probe.blocked or consumer.ended, timeout=LATER):
        raise CheckSkipped(
            f"the manager did not read the engine up to its Block() within {seconds(LATER)} (the consumer "
            f"saw {consumer.describe()}), so there is no blocked engine to stop (see the SM-1 to SM-17 "
            "checks)"
        )
    if not rig.probe.blocked:
        raise CheckSkipped(
            f"the consumer's loop ended before the engine blocked ({consumer.describe()}), so there is no "
            "blocked engine to stop (see the SM-1 to SM-17 checks)"
        )


async def stop_while_blocked(
    ctx: CheckContext, rig: Rig, consumer: Consumer, *, stoppers: int = 1
) -> BlockedStop:
    """Once the engine is blocked under ``consumer``, stop the manager from ``stoppers`` other tasks (at
    once) and wait :data:`PROMPT` for the loop to end. If it has not, release the engine and wait
    :data:`LATER` more. Then wait (:data:`LATER`) for the stoppers. Never raises for what the manager does
    (but see :func:`wait_until_blocked`)."""
    await wait_until_blocked(ctx, rig, consumer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = spawn_stoppers(ctx, rig, stoppers)
    prompt = await until(ctx, lambda: consumer.ended, timeout=PROMPT)
    released = False
    if not prompt:
        released = True
        rig.probe.release()
        await until(ctx, lambda: consumer.ended, timeout=LATER)
    ended_at = consumer.ended_at if consumer.ended_at is not None else loop.time()
    await ctx.wait_tasks(tasks, timeout=LATER)
    return BlockedStop(consumer, tasks, prompt, ended_at - started, released)


# ---------------------------------------------------------------------------------------------- results
async def results_now(ctx: CheckContext, manager: Any) -> list[tuple[str, Outcome]]:
    """``completion()``, ``message()`` and ``await manager``, each in a task of its own, waited for
    :data:`LATER`; labelled ``"a later completion()"`` and so on."""
    tasks = spawn_waiters(ctx, manager, len(RESULT_METHODS), RESULT_METHODS)
    found = await outcomes(ctx, tasks, timeout=LATER)
    return [(f"a later {call_name(m)}", o) for m, o in zip(RESULT_METHODS, found, strict=True)]


def spawn_pending(ctx: CheckContext, manager: Any) -> list[tuple[str, asyncio.Task[object]]]:
    """``completion()``, ``message()`` and ``await manager``, each in a task of its own, started now (before
    a stop), labelled ``"a pending completion()"`` and so on; see :func:`pending_outcomes`."""
    tasks = spawn_waiters(ctx, manager, len(RESULT_METHODS), RESULT_METHODS)
    return [(f"a pending {call_name(m)}", t) for m, t in zip(RESULT_METHODS, tasks, strict=True)]


async def pending_outcomes(
    ctx: CheckContext, pending: Sequence[tuple[str, asyncio.Task[object]]]
) -> list[tuple[str, Outcome]]:
    """How the waiters of :func:`spawn_pending` ended, waited for :data:`LATER`."""
    found = await outcomes(ctx, [task for _, task in pending], timeout=LATER)
    return [(label, outcome) for (label, _), outcome in zip(pending, found, strict=True)]


def judge_incomplete(labelled: Sequence[tuple[str, Outcome]]) -> str | None:
    """The first result that did not raise :class:`StreamIncompleteError`, in words; ``None`` if all did."""
    for label, outcome in labelled:
        if outcome.pending or not isinstance(outcome.error, StreamIncompleteError):
            waited = f" after {seconds(LATER)}" if outcome.pending else ""
            return f"{label} {outcome.describe()}{waited}"
    return None


def incomplete_errors(labelled: Sequence[tuple[str, Outcome]]) -> list[tuple[str, StreamIncompleteError]]:
    """The :class:`StreamIncompleteError` s among the results, with their labels."""
    return [(label, o.error) for label, o in labelled if isinstance(o.error, StreamIncompleteError)]
