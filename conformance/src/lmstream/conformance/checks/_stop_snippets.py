"""Shared steps of the stop checks (SM-21 to SM-28), their reproductions: :func:`stop_reproduction`, a
paste-able script that builds the target's manager over a
:func:`~lmstream.conformance.checks._stop_support.stop_stream` (and imports it from there), and the
statements the checks put in its body (a consumer task, a bounded stop, what SM-22 looks at, the result).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import script

from ._manager_support import ROLE, ScriptCompletion, completion_for

__all__ = [
    "CONSUME",
    "ENDED_AT_ONCE",
    "LOOK",
    "RESULT",
    "STOP",
    "STOP_AND_LOOK",
    "stop_reproduction",
]


# ---------------------------------------------------------------------------------------------- snippets
STOP: Final = "await asyncio.wait_for(manager.aclose(), 1)"
"""Reproduction line: a stop from the snippet's task, bounded."""

LOOK: Final = (
    "print('state:', repr(manager.state), 'lock held:', lock.locked(), "
    "'engine closed:', stream.ag_frame is None)"
)
"""Reproduction line: what SM-22 asks of a stop (for a snippet with a lock)."""

STOP_AND_LOOK: Final = (
    "async def stop_and_look():  # looks the moment aclose() returns",
    "    await manager.aclose()",
    f"    {LOOK}",
)
"""Reproduction lines: a coroutine that stops and shows at once what SM-22 asks of the stop."""

ENDED_AT_ONCE: Final = (
    "done, _ = await asyncio.wait([consumer], timeout=0.1)",
    "print('ended at once:', bool(done), 'cancelled:', bool(done) and consumer.cancelled(), tokens)",
)
"""Reproduction lines: whether the consumer task ended within 0.1 s, and how."""

RESULT: Final = "print(await asyncio.gather(manager.completion(), return_exceptions=True))"
"""Reproduction line: the result, or the exception it raises."""

CONSUME: Final[tuple[str, ...]] = (
    "tokens = []",
    "async def consume():",
    "    async for token in manager:",
    "        tokens.append(token)",
    "consumer = asyncio.create_task(consume())",
)
"""Reproduction lines: a consumer task that records its tokens."""


def stop_reproduction(
    ctx: CheckContext,
    items: Sequence[object],
    body: Sequence[str],
    *,
    lock: bool = False,
    after: bool = False,
    cleanup_turns: int = 0,
    imports: Sequence[str] = (),
    after_body: Sequence[str] = ("calls.append(completion)",),
) -> str:
    """A paste-able script: a :func:`stop_stream` of ``items`` (``probe`` records it), the target's manager
    over it (with an ``asyncio.Lock`` as ``lock`` and an ``after`` recording into ``calls`` when asked),
    then ``body``; ``imports`` are added to the script's imports, ``after_body`` is the body of ``after``."""
    target_imports, expression = ctx.target_reference()
    rendered = ", ".join(_render(item) for item in items)
    turns = f", cleanup_turns={cleanup_turns}" if cleanup_turns else ""
    setup = ["probe = StopProbe()", f"stream = stop_stream([{rendered}], probe{turns})"]
    if lock:
        setup.append("lock = asyncio.Lock()")
    if after:
        setup += ["calls = []", "async def after(completion):", *(f"    {line}" for line in after_body)]
    extra = (", after=after" if after else "") + (", lock=lock" if lock else "")
    setup.append(f"manager = {expression}(stream, {ROLE!r}{extra})")
    return script(
        [
            *imports,
            *target_imports,
            "from lmstream.conformance import Block, Fail, Pause",
            "from lmstream.conformance.checks._manager_support import completion_for",
            "from lmstream.conformance.checks._stop_support import StopProbe, stop_stream, until_blocked",
        ],
        [*setup, *body],
    )


def _render(item: object) -> str:
    if isinstance(item, ScriptCompletion):
        return "completion_for()" if item == completion_for() else repr(item)
    return repr(item)
