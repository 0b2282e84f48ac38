"""The world of one explored example (:class:`~lmstream.conformance.stateful.ManagerMachine`): what it was
given (:class:`Setup`: the engine script, a lock or not, an ``after`` that records or raises, the engine's
pause; :func:`build_script` makes the script from the machine's drawn knobs) and what is in it at any moment
(:class:`World`: the scripted engine and its probe, the validated manager, the consumer, the waiters, the
stops), told in words.

A :class:`World` holds the state and answers questions about it. It runs nothing (the event loop and the
rules are the machine's) and judges nothing (the invariants are :mod:`._explore_checks`'s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._explore_actors import Consumer, Waiter
from .checks._manager_support import ROLE, CountingLock, ScriptCompletion, ScriptMessage
from .describe import describe_exception, describe_items
from .explore import AfterError, EngineError
from .scripted import Block, Fail, StreamProbe, scripted_stream

__all__ = ["After", "Ending", "Fault", "Setup", "World", "build_script"]

After = Literal["record", "raise"] | None
"""What the manager's ``after`` does: nothing (no ``after`` at all), record its call, or raise."""
Ending = Literal["none", "completion", "completion without text"]
"""How the engine's script ends: with its last token, a completion of the tokens' text, or one whose
message has no text."""
Fault = Literal["raise", "bytes"] | None
"""What goes wrong in the engine: nothing, an :class:`EngineError`, or a ``bytes`` item (not a token)."""


def build_script(
    tokens: Sequence[str], ending: Ending, fault: Fault, fault_at: int, block_at: int | None
) -> tuple[object, ...]:
    """The engine's script: ``tokens``, then the ``ending``; the ``fault`` before token ``fault_at``; a
    :class:`Block` before item ``block_at`` (positions past the end are the end)."""
    items: list[object] = list(tokens)
    if ending == "completion":
        items.append(ScriptCompletion(ScriptMessage(ROLE, "".join(tokens)), 7, len(tokens)))
    elif ending == "completion without text":
        items.append(ScriptCompletion(ScriptMessage(ROLE, None)))
    if fault is not None:
        at = min(max(fault_at, 0), len(tokens))
        items.insert(
            at, Fail(EngineError(f"engine failed after {at} token(s)")) if fault == "raise" else b"\xff"
        )
    if block_at is not None:
        items.insert(min(max(block_at, 0), len(items)), Block())
    return tuple(items)


@dataclass(frozen=True)
class Setup:
    """What an example is given: the engine's script, whether the manager gets a lock, what its ``after``
    does (nothing, record, raise), and the engine's pause between items (``None``: none at all)."""

    script: tuple[object, ...]
    lock: bool = False
    after: After = None
    pause: float | None = 0.0

    @property
    def tokens(self) -> list[str]:
        """The str tokens before the first fault: what a consumer may see."""
        found: list[str] = []
        for item in self.script:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, Fail) or not isinstance(item, (Block, ScriptCompletion)):
                break
        return found

    @property
    def fault(self) -> object:
        """The engine error object or the bytes item, if the script has one."""
        for item in self.script:
            if isinstance(item, Fail):
                return item.error
            if not isinstance(item, (str, Block, ScriptCompletion)):
                return item
        return None

    @property
    def completion(self) -> ScriptCompletion | None:
        return next((item for item in self.script if isinstance(item, ScriptCompletion)), None)


class World:
    """The state of one example: the engine built from the setup, and, once the machine has built and driven
    them, the manager (``proxy``, validated), the actors and the stops."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.probe = StreamProbe()
        self.engine = scripted_stream(setup.script, self.probe, pause=setup.pause)
        self.lock = CountingLock() if setup.lock else None
        self.after_calls: list[object] = []
        self.after_error = AfterError("after failed on purpose") if setup.after == "raise" else None
        self.waiters: list[Waiter] = []
        self.stops: list[asyncio.Task[None]] = []
        self.consumer: Consumer | None = None
        self.consumer_task: asyncio.Task[None] | None = None
        self.cancelled_consumer = False
        self.released = False
        self.terminal_sent = False
        self.proxy: Any = None
        self.stoppable = False

    # ------------------------------------------------------------------ what may happen next
    @property
    def consumer_open(self) -> bool:
        return not self.terminal_sent and not (self.consumer_task is not None and self.consumer_task.done())

    @property
    def can_cancel(self) -> bool:
        return (
            self.consumer_task is not None and not self.consumer_task.done() and not self.cancelled_consumer
        )

    @property
    def can_release(self) -> bool:
        return not self.released and any(isinstance(item, Block) for item in self.setup.script)

    # ------------------------------------------------------------------ how things stand
    def unread(self) -> bool:
        """Whether no consumer has iterated the manager (so a waiter drove the stream, SM-6)."""
        return self.consumer is None or not self.consumer.claimed

    def stopped(self) -> bool:
        """Whether an ``aclose()`` of the manager has returned."""
        return any(task.done() and not task.cancelled() and task.exception() is None for task in self.stops)

    def engine_closed(self) -> bool:
        return getattr(self.engine, "ag_frame", None) is None  # an async generator's frame: None once over

    def waiter_tasks(self) -> list[asyncio.Task[Any]]:
        return [w.task for w in self.waiters if w.task is not None]

    def ended(self) -> str | None:
        """How the stream has ended, as things stand, or ``None`` while it may still be going on."""
        consumer = self.consumer
        if consumer is not None and consumer.claimed and consumer.over:
            return f"the consumer {self.how_consumer_ended()}"
        if self.stopped():
            return "aclose() returned"
        if self.engine_closed() and self.probe.requests:
            return "the engine stream finished"
        return None

    # ------------------------------------------------------------------ in words
    def describe(self) -> str:
        """What the consumer saw, the state, the waiters and the engine: one line of the trace."""
        consumer = self.consumer
        seen = "no consumer" if consumer is None else f"consumer saw {describe_items(consumer.tokens)}"
        if consumer is not None and consumer.over:
            seen += f" and {self.how_consumer_ended()}"
        state = f"; state {self.proxy.state.value}" if self.stoppable else ""
        pending = sum(1 for w in self.waiters if not w.done)
        waiters = f"; {len(self.waiters)} waiter(s), {pending} pending" if self.waiters else ""
        return f"{seen}{state}{waiters}; engine {self.engine_state()}"

    def engine_state(self) -> str:
        probe = self.probe
        if probe.blocked:
            return f"blocked after {len(probe.yielded)} item(s)"
        if self.engine_closed():
            return f"closed after {len(probe.yielded)} item(s)"
        return f"open, {len(probe.yielded)} item(s) read" if probe.requests else "not read"

    def how_consumer_ended(self) -> str:
        consumer = self.consumer
        assert consumer is not None
        if consumer.refused is not None:
            return f"could not iterate ({type(consumer.refused).__name__})"
        if consumer.cancelled:
            return "was cancelled"
        if consumer.error is not None:
            return f"its loop raised {describe_exception(consumer.error)}"
        if consumer.left is not None:
            return "broke out" if consumer.left == "break" else "closed its iterator"
        return "its loop ended normally" if consumer.ended else "is still reading"

    def stuck(self) -> str:
        """Who is still waiting: the waiters, the consumer (in a step or not), the stops."""
        stuck = [
            ("the final completion()" if w.final else f"{w.method}()") for w in self.waiters if not w.done
        ]
        if self.consumer is not None and self.consumer_task is not None and not self.consumer_task.done():
            stuck.append("the consumer's step" if self.consumer.in_step else "the consumer")
        stuck += [f"aclose() {n + 1}" for n, t in enumerate(self.stops) if not t.done()]
        return ", ".join(stuck) or "nothing"
