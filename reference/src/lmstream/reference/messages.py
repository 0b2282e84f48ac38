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


# A frozen dataclass's __init__ sets each field through object.__setattr__, a global look-up and a call
# per field; setting the slots through their descriptors does the same in half the time. The default
# builder runs once per stream, so for short streams this is a visible share of a manager's cost.
_new = object.__new__
_set_role = vars(ChatMessage)["role"].__set__  # the slots' member descriptors
_set_text = vars(ChatMessage)["text"].__set__
_set_message = vars(Completion)["message"].__set__
_set_prompt_tokens = vars(Completion)["prompt_tokens"].__set__
_set_completion_tokens = vars(Completion)["completion_tokens"].__set__


def build_completion(role: object, text: str) -> Completion:
    """The default :data:`CompletionBuilder`: ``Completion(ChatMessage(role, text))``, counts ``None``."""
    message = _new(ChatMessage)
    _set_role(message, role)
    _set_text(message, text)
    completion = _new(Completion)
    _set_message(completion, message)
    _set_prompt_tokens(completion, None)
    _set_completion_tokens(completion, None)
    return completion
