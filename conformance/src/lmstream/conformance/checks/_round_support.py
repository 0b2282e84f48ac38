"""Shared steps of the round checks (SM-18 to SM-20): a scripted ``next_step``, bounded steps of a round,
what each step's engine stream did, and reproduction snippets.

A round check starts a round with the target (``target(next_step, ROLE)``) over a :class:`ScriptedSteps` it
controls. Each step is an :class:`EngineStep` (a script run by
:func:`~lmstream.conformance.scripted.scripted_stream` and observed by a
:class:`~lmstream.conformance.scripted.StreamProbe`) or a finished message; ``next_step`` records every call:
what it received and, at that moment, what each earlier step's engine stream had done. The round's managers
are driven as an application would and judged by what they do, never by their type. Every wait goes through
the check's :class:`~lmstream.conformance.context.CheckContext`, so a round that hangs fails with what was
awaited and for how long.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, Union

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception, script
from lmstream.conformance.model import CheckFailure, CheckSkipped
from lmstream.conformance.scripted import StreamProbe, scripted_stream
from lmstream.conformance.targets import RoundTarget
from lmstream.spec import describe_item

from ._manager_support import ROLE, ScriptMessage

__all__ = [
    "FIRST_TOKENS",
    "NEVER",
    "ROLE",
    "TOOL_RESULT",
    "EngineStep",
    "Result",
    "RoundRun",
    "RoundStep",
    "ScriptedSteps",
    "StepCall",
    "StreamSnapshot",
    "first_manager",
    "judged",
    "next_manager",
    "next_raises",
    "result_of",
    "round_reproduction",
    "show",
    "start_round",
    "task_outcome",
    "until",
]

T = TypeVar("T")

TOOL_RESULT: Final = ScriptMessage("function", "42")
"""The finished message a scripted round hands out between two engine steps (a tool's result)."""


@dataclass(frozen=True)
class EngineStep:
    """A step whose engine stream runs this script (items, and the commands Pause, Block and Fail)."""

    items: tuple[object, ...]


Step = Union[EngineStep, ScriptMessage]  # noqa: UP007 - a runtime alias on Python 3.10
"""One step of a scripted round: an engine stream or a finished message."""

FIRST_TOKENS: Final = (" Hel", "lo", ",  ")
"""The tokens of the first step's engine stream in most scenarios."""

NEVER: Final = EngineStep(("this step must never be handed out",))
"""A step the round must never hand out: it follows a manager that ends the round (SM-19), or that the
round's close stops (SM-20)."""


@dataclass(frozen=True)
class StreamSnapshot:
    """What one step's engine stream had done at some moment (a finished message has none)."""

    is_message: bool = False
    yielded: int = 0
    read_through: bool = False
    """The script ran to its end or its error: the whole stream was read."""
    finished: bool = False
    """The generator is finished: read through, or closed (``aclose()`` awaited or the loop finalized it)."""
    started: bool = False

    def describe(self) -> str:
        """A few words: ``read to its end``, ``closed after 1 item``, ``being read (2 items so far)``."""
        if self.is_message:
            return "a finished message (no stream)"
        if self.read_through:
            return f"read to its end ({_items(self.yielded)})"
        if self.finished:
            return f"closed after {_items(self.yielded)}" if self.started else "closed without being read"
        if not self.started:
            return "not read yet"
        return f"being read ({_items(self.yielded)} so far)"


def _items(count: int) -> str:
    return f"{count} item{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class StepCall:
    """One call of the scripted ``next_step``: what it received, and what each earlier step's stream had done
    at that moment (in step order)."""

    number: int
    previous: object
    earlier: tuple[StreamSnapshot, ...]


class ScriptedSteps:
    """A ``next_step`` that hands out ``steps`` in order, then ``None``; every call and stream is recorded.

    :param pause: as for :func:`~lmstream.conformance.scripted.scripted_stream` (``0``: one event-loop turn
        per item).
    """

    def __init__(self, steps: Sequence[Step], *, pause: float | None = 0.0) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)
        self.pause = pause
        self.calls: list[StepCall] = []
        self.probes: list[StreamProbe | None] = [None] * len(self.steps)
        self.streams: list[AsyncGenerator[Any, None] | None] = [None] * len(self.steps)

    async def __call__(self, previous: object) -> object:
        index = len(self.calls)
        self.calls.append(StepCall(index + 1, previous, tuple(self.snapshot(i) for i in range(index))))
        if index >= len(self.steps):
            return None
        step = self.steps[index]
        if isinstance(step, ScriptMessage):
            return step
        probe = self.probes[index] = StreamProbe()
        stream = self.streams[index] = scripted_stream(step.items, probe, pause=self.pause)
        return stream

    def snapshot(self, index: int) -> StreamSnapshot:
        """What step ``index``'s engine stream has done by now."""
        if isinstance(self.steps[index], ScriptMessage):
            return StreamSnapshot(is_message=True, read_through=True, finished=True)
        probe, stream = self.probes[index], self.streams[index]
        if probe is None or stream is None:
            return StreamSnapshot()
        return StreamSnapshot(
            yielded=len(probe.yielded),
            read_through=probe.ended or (probe.raised is not None and not probe.cancelled),
            finished=getattr(stream, "ag_frame", None) is None,  # an async generator's frame: None once over
            started=probe.requests > 0,
        )

    def probe(self, index: int) -> StreamProbe:
        """The probe of step ``index``'s engine stream (``next_step`` must have handed it out)."""
        probe = self.probes[index]
        if probe is None:
            raise LookupError(f"step {index + 1} has no engine stream yet")
        return probe

    def handed_out(self, index: int) -> bool:
        """Whether ``next_step`` has returned step ``index``."""
        return len(self.calls) > index

    def release_all(self) -> None:
        """Release every stream waiting at a Block (cleanup)."""
        for probe in self.probes:
            if probe is not None:
                probe.release()


@dataclass
class RoundStep:
    """How one ``anext()`` of the round ended: a manager, the round's end, an exception, or still pending."""

    manager: Any = None
    ended: bool = False
    error: BaseException | None = None
    pending: bool = False
    waited: float = 0.0

    @property
    def produced(self) -> bool:
        """Whether it produced a manager."""
        return not (self.ended or self.pending or self.error is not None)

    def describe(self) -> str:
        """``it produced a manager``, ``it ended (StopAsyncIteration)``, ``it raised ...``, ``it hung``."""
        if self.pending:
            return f"it had not returned after {self.waited:.2f} s"
        if self.ended:
            return "it ended (StopAsyncIteration)"
        if self.error is not None:
            return f"it raised {describe_exception(self.error)}"
        return f"it produced a manager, {describe_item(self.manager)}"


def start_round(target: RoundTarget, ctx: CheckContext, steps: ScriptedSteps) -> AsyncIterator[Any]:
    """``target(steps, ROLE)``, checked to be an async iterator.

    :raises CheckFailure: when the target raises or returns something that is not an async iterator.
    """
    expected = "a round stream: an async iterator of managers (RoundStreamFactory)"
    try:
        rounds = target(steps, ROLE)  # typed as the factory promises; checked below
    except Exception as exc:
        raise CheckFailure(
            f"calling {target.name}(next_step, role) raised {describe_exception(exc)}", expected=expected
        ) from exc
    if not callable(getattr(type(rounds), "__anext__", None)):
        raise CheckFailure(
            f"calling {target.name}(next_step, role) returned {describe_item(rounds)}, which has no "
            "__anext__()",
            expected=expected,
        )
    return rounds


async def next_manager(
    ctx: CheckContext, rounds: AsyncIterator[Any], *, what: str, timeout: float | None = None
) -> RoundStep:
    """``await anext(rounds)`` in the check's task, bounded; the outcome, never an exception."""
    started = ctx.elapsed()
    try:
        manager = await ctx.bounded(_anext(rounds), what=what, timeout=timeout)
    except StopAsyncIteration:
        return RoundStep(ended=True)
    except CheckTimeout:
        return RoundStep(pending=True, waited=ctx.elapsed() - started)
    except Exception as exc:
        return RoundStep(error=exc)
    return RoundStep(manager=manager)


async def _anext(rounds: AsyncIterator[Any]) -> Any:
    return await rounds.__anext__()


async def first_manager(ctx: CheckContext, rounds: AsyncIterator[Any]) -> Any:
    """Manager 1, or a skip: a round that cannot produce its first manager fails SM-18's checks."""
    got = await next_manager(ctx, rounds, what="manager 1")
    if not got.produced:
        raise CheckSkipped(
            f"asked for its first manager, the round did not produce one: {got.describe()} (see SM-18)"
        )
    return got.manager


def task_outcome(task: asyncio.Task[Any]) -> str:
    """How a done task that asked the round for a manager ended, in words (as :meth:`RoundStep.describe`)."""
    if task.cancelled():
        return "it was cancelled"
    error = task.exception()
    if isinstance(error, StopAsyncIteration):
        return "it ended (StopAsyncIteration)"
    if error is not None:
        return f"it raised {describe_exception(error)}"
    return f"it produced a manager, {describe_item(task.result())}"


def judged(probe_ok: bool, ctx: CheckContext, scenario: str, state: str) -> bool:
    """Note a scenario left unjudged because the round did not drain a skipped manager (SM-18's failure)."""
    if not probe_ok:
        ctx.note(
            f"the {scenario} scenario was not judged: the round did not drain the skipped manager (its "
            f"stream was {state}; see SM-18)"
        )
    return probe_ok


@dataclass
class Result:
    """How ``await manager.completion()`` ended: a value, an exception, or still pending."""

    value: object = None
    error: BaseException | None = None
    pending: bool = False
    waited: float = 0.0

    def describe(self) -> str:
        if self.pending:
            return f"completion() had not returned after {self.waited:.2f} s"
        if self.error is not None:
            return f"completion() raised {describe_exception(self.error)}"
        return f"completion() returned {describe_item(self.value)}"


async def result_of(ctx: CheckContext, manager: Any, *, what: str, timeout: float | None = None) -> Result:
    """``await manager.completion()`` in the check's task, bounded; the outcome, never an exception."""
    started = ctx.elapsed()
    try:
        return Result(value=await ctx.bounded(_completion(manager), what=what, timeout=timeout))
    except CheckTimeout:
        return Result(pending=True, waited=ctx.elapsed() - started)
    except Exception as exc:
        return Result(error=exc)


async def _completion(manager: Any) -> object:
    return await manager.completion()


async def until(condition: Callable[[], bool], *, turns: int = 200) -> bool:
    """Let the event loop turn until ``condition()`` holds, at most ``turns`` turns (no clock involved)."""
    for _ in range(turns):
        if condition():
            return True
        await asyncio.sleep(0)
    return condition()


class RoundRun:
    """One scenario of a round check: its scripted steps, the round(s) started, what to close at the end,
    and the reproduction of the scenario. Use as ``async with RoundRun(...) as run:``; on exit every Block
    is released and every held iterator and round is closed, quietly (problems become notes).

    :param plan: the steps ``next_step`` hands out.
    :param body: the reproduction's statements after the round is started (see :func:`round_reproduction`).
    """

    def __init__(
        self, target: RoundTarget, ctx: CheckContext, plan: Sequence[Step], body: Sequence[str]
    ) -> None:
        self.target = target
        self.ctx = ctx
        self.steps = ScriptedSteps(plan)
        self.reproduction = round_reproduction(ctx, plan, body)
        self._closing: list[tuple[object, str]] = []
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> RoundRun:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.steps.release_all()
        pending = [task for task in self._tasks if not task.done()]
        if pending and not await self.ctx.wait_tasks(pending, timeout=self.ctx.grace):
            for task in pending:
                task.cancel()
            await self.ctx.wait_tasks(pending, timeout=self.ctx.grace)
        for closable, what in reversed(self._closing):
            await self.ctx.close_quietly(closable, what=what)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Start a task (:meth:`CheckContext.spawn`); at the end of the scenario it gets the grace to finish
        (the engine released), then is cancelled, before anything is closed."""
        task = self.ctx.spawn(coro, name=name)
        self._tasks.append(task)
        return task

    def start(self, *, judged: bool = False) -> AsyncIterator[Any]:
        """Start the round (:func:`start_round`); it is closed at the end of the scenario.

        :param judged: whether a round that cannot be started fails this check (SM-18's checks) or skips it,
            naming SM-18 (every other check).
        """
        rounds = self.start_unheld(judged=judged)
        self.hold(rounds, "the round stream")
        return rounds

    def start_unheld(self, *, judged: bool = False) -> AsyncIterator[Any]:
        """Start the round without keeping a reference to it (for a check that drops it, as a break does)."""
        try:
            return start_round(self.target, self.ctx, self.steps)
        except CheckFailure as exc:
            if judged:
                raise
            raise CheckSkipped(f"no round to examine: {exc.observed} (see SM-18)") from None

    def hold(self, closable: object, what: str) -> None:
        """Close ``closable`` (``aclose()``, quietly) at the end of the scenario."""
        self._closing.append((closable, what))

    def failure(self, observed: str, expected: str) -> CheckFailure:
        """The scenario's failure, with its reproduction."""
        return CheckFailure(observed, expected=expected, reproduction=self.reproduction)


def round_reproduction(ctx: CheckContext, steps: Sequence[Step], body: Sequence[str]) -> str:
    """A paste-able script: a scripted ``next_step`` handing out ``steps``, the target's round, ``body``.

    In the body, ``rounds`` is the round's iterator and ``received`` lists what ``next_step`` was given.
    """
    imports, expression = ctx.target_reference()
    rendered = ", ".join(_render(step) for step in steps)
    setup = [
        f"steps: list[object] = [{rendered}]",
        "received: list[object] = []",
        "",
        "async def next_step(previous: object) -> object:",
        "    received.append(previous)",
        "    if not steps:",
        "        return None",
        "    step = steps.pop(0)",
        "    return scripted_stream(step) if isinstance(step, list) else step",
        "",
        f"rounds = aiter({expression}(next_step, {ROLE!r}))",
    ]
    return script(
        [
            *imports,
            "from lmstream.conformance import Block, Fail, scripted_stream",
            "from lmstream.conformance.checks._manager_support import ScriptMessage",
        ],
        [*setup, *body],
    )


def show(label: str, expression: str, expect: str) -> list[str]:
    """Reproduction lines that await ``expression`` (bounded) and print what it returned or raised."""
    return [
        "try:",
        f"    print({label + ' returned'!r}, await asyncio.wait_for({expression}, 2))",
        f"except Exception as error:  # expect {expect}",
        f"    print({label + ' raised'!r}, repr(error))",
    ]


def next_raises(expect: str) -> list[str]:
    """Reproduction lines that ask the round for its next step and print what it returned or raised."""
    return show("the round's next step", "anext(rounds)", f"{expect}, not a manager or a hang")


def _render(step: Step) -> str:
    if isinstance(step, ScriptMessage):
        return repr(step)
    return "[" + ", ".join(repr(item) for item in step.items) + "]"
