"""The message and completion a manager builds when the engine yielded no completion of its own (SM-4).

Both are frozen, slotted dataclasses: they satisfy :class:`lmstream.spec.Message` and
:class:`lmstream.spec.Completion` by shape. An integrator who wants completions of another type (kani's
``Completion`` wrapping kani's ``ChatMessage``, say) passes a :data:`CompletionBuilder` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lmstream.spec import Completion as CompletionProtocol
from lmstream.spec import Message

__all__ = ["ChatMessage", "Completion", "CompletionBuilder", "build_completion"]

_C = TypeVar("_C", bound=CompletionProtocol)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A finished message: who said it and its exact text (``None`` when it has none)."""

    role: object
    text: str | None


@dataclass(frozen=True, slots=True)
class Completion:
    """A completion: the message and, where known, its token counts (``None`` when unknown)."""

    message: Message
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


CompletionBuilder = Callable[[object, str], _C]
"""``build(role, text) -> completion``: what a manager calls, once, to build the completion of a stream
that ended without one. ``text`` is exactly the concatenation of the tokens (SM-4); token counts are
unknown. For kani::

    from kani.engines.base import Completion
    from kani.models import ChatMessage

    def kani_completion(role, text):
        return Completion(ChatMessage(role=role, content=text))
"""


def build_completion(role: object, text: str) -> Completion:
    """The default :data:`CompletionBuilder`: ``Completion(ChatMessage(role, text))``, counts ``None``."""
    return Completion(ChatMessage(role, text))
