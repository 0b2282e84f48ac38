"""Example engines that keep every engine-stream requirement; ``make demo`` checks them.

* :class:`EchoEngine` repeats the last user message word by word, then yields a completion. For the
  standard prompt (:data:`~lmstream.conformance.STANDARD_PROMPT`) it yields ``"Say"``, ``" hello"``,
  ``" in"``, ``" five"``, ``" words"``, ``" or"``, ``" fewer."`` and a completion whose text is their
  concatenation.
* :class:`ScriptedEngine` yields a given script of items, with optional pauses, blocks and errors (see
  :mod:`lmstream.conformance.scripted`); every call of ``stream()`` runs the script afresh and records what
  happened in a new :class:`~lmstream.conformance.scripted.StreamProbe` (``engine.probes``). With its default
  script it conforms; a script with an error or a bad item makes a deliberately broken engine.

Try them::

    lmstream check engine lmstream.conformance.examples:EchoEngine
    lmstream check engine lmstream.conformance.examples:ScriptedEngine
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any, Final

from .messages import ChatMessage, Completion
from .scripted import StreamProbe, scripted_stream

__all__ = ["DEMO_SCRIPT", "EchoEngine", "ScriptedEngine"]

_TOKENS = re.compile(r"\s*\S+|\s+")


def _field(message: object, name: str) -> object:
    if isinstance(message, Mapping):
        return message.get(name)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return getattr(message, name, None)


def _last_user_text(messages: Iterable[object]) -> str:
    """The text of the last message whose role is ``user`` (a ``str`` or an enum with that value)."""
    text = ""
    for message in messages:
        role = _field(message, "role")
        role = getattr(role, "value", role)
        if str(role).lower() == "user":
            value = _field(message, "text")
            value = _field(message, "content") if value is None else value
            text = value if isinstance(value, str) else ""
    return text


class EchoEngine:
    """Repeats the last user message word by word (whitespace kept, no empty token), then yields a
    :class:`~lmstream.conformance.Completion` with the exact text and token counts.

    :param role: the role of the completion's message.
    :param pause: seconds to sleep before each token (``0``: one event-loop turn, as a network read takes).
    """

    def __init__(self, *, role: object = "assistant", pause: float = 0.0) -> None:
        self.role = role
        self.pause = pause

    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[str | Completion, None]:
        """Stream the echo of ``messages`` (any messages with ``role`` and ``text`` or ``content``)."""
        prompt = list(messages)
        text = _last_user_text(prompt)
        tokens = _TOKENS.findall(text)
        for token in tokens:
            await asyncio.sleep(self.pause)
            yield token
        prompt_tokens = sum(len(str(_field(m, "text") or _field(m, "content") or "").split()) for m in prompt)
        yield Completion(
            ChatMessage(self.role, text), prompt_tokens=prompt_tokens, completion_tokens=len(tokens)
        )


DEMO_SCRIPT: Final[tuple[object, ...]] = (
    "Hello",
    ", ",
    "world",
    "!",
    Completion(ChatMessage("assistant", "Hello, world!"), prompt_tokens=12, completion_tokens=4),
)
"""The default script of :class:`ScriptedEngine`: four tokens and their completion."""


class ScriptedEngine:
    """Yields a script (items, :class:`~lmstream.conformance.scripted.Pause`,
    :class:`~lmstream.conformance.scripted.Block`, :class:`~lmstream.conformance.scripted.Fail`) whatever
    the prompt.

    :param script: the steps; default :data:`DEMO_SCRIPT`.
    :param pause: seconds to sleep before each item (``None``: never suspend between items).
    :ivar probes: one :class:`~lmstream.conformance.scripted.StreamProbe` per ``stream()`` call, in order.
    """

    def __init__(self, script: Iterable[object] = DEMO_SCRIPT, *, pause: float | None = 0.0) -> None:
        self.script = tuple(script)
        self.pause = pause
        self.probes: list[StreamProbe] = []

    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncGenerator[Any, None]:
        """A new run of the script (the prompt is ignored)."""
        probe = StreamProbe()
        self.probes.append(probe)
        return scripted_stream(self.script, probe, pause=self.pause)
