"""The reference round stream: one manager per message of a function-calling round (SM-18 to SM-20).

kani's ``Kani.full_round_stream`` is the model: the model's reply is streamed, its tool calls run, their
results are handed out as finished messages, and the model is asked again, until it answers without a tool
call. :func:`round_stream` keeps the part of that loop every framework shares (producing the managers, one
at a time, and ending the round correctly) and leaves the rest to ``next_step``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from lmstream.spec import Completion, Message, StreamState

from .manager import StreamManager
from .messages import build_completion as default_build_completion

__all__ = ["NextStep", "round_stream"]

NextStep = Callable[[Completion | None], Awaitable[AsyncIterable[str | Completion] | Message | None]]
"""``next_step(previous) -> step``: given the completion of the previous step (``None`` before the first),
return the next step: an engine stream (streamed by a new manager with the round's role), an already
finished message (e.g. a tool result; handed out as :meth:`StreamManager.from_message` does, SM-17), or
``None`` to end the round."""


async def round_stream(
    next_step: NextStep,
    role: Any,
    *,
    build_completion: Callable[[Any, str], Completion] = default_build_completion,
) -> AsyncIterator[StreamManager[Completion]]:
    """Yield one manager per step of a round, each only after the previous one's stream has ended.

    - SM-18: a manager the consumer did not iterate is drained (its completion awaited) before
      ``next_step`` is called again; ``next_step`` receives that completion.
    - SM-19: if a manager fails or ends incomplete or stopped, the round ends: the next step of this
      iterator raises that same error.
    - SM-20: closing this iterator (break, ``aclose()``, cancellation of its consumer) stops the current
      manager as an early stop, releasing everything it holds.

    A stream manager's ``after`` is not used: what a framework does after each step (append to the
    history, run the tool calls) belongs in ``next_step``, which sees every completion in order.
    The function satisfies :class:`lmstream.spec.RoundStreamFactory`.
    """
    previous: Completion | None = None
    while True:
        step = await next_step(previous)
        if step is None:
            return
        manager: StreamManager[Completion]
        if isinstance(step, AsyncIterable):
            manager = StreamManager(step, role, build_completion=build_completion)
        else:
            manager = StreamManager.from_message(step)
        try:
            yield manager
            previous = await manager.completion()  # SM-18 drains a skipped manager; SM-19 re-raises
        except BaseException:
            # SM-20: the round was left (GeneratorExit) or its consumer cancelled. A manager that already
            # ended (SM-19) is unaffected: stopping a finished stream changes nothing.
            await manager._stop(StreamState.INCOMPLETE)  # pyright: ignore[reportPrivateUsage]  # the package's own early stop
            raise
