"""The suite's own plain message and completion: what the standard prompt and the example engines hold.

The suite sends :data:`~lmstream.conformance.STANDARD_PROMPT` (two :class:`ChatMessage`) to an engine, and
its example engines end with a :class:`Completion`. Both are frozen, slotted dataclasses that satisfy
:class:`lmstream.spec.Message` and :class:`lmstream.spec.Completion` by shape, with the same fields (and so
the same ``repr``) as :class:`lmstream.reference.ChatMessage` and :class:`lmstream.reference.Completion`;
they live here so that the conformance suite does not depend on the reference implementation it checks.
Nothing in the suite tests a value's type: any object with these attributes will do.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmstream.spec import Message

__all__ = ["ChatMessage", "Completion"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A message: who said it (``role``, a ``str`` or an enum member) and its text (``None``: none)."""

    role: object
    text: str | None


@dataclass(frozen=True, slots=True)
class Completion:
    """A completion: the message and, where known, its token counts (``None`` when unknown)."""

    message: Message
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
