"""Positive cases: messages and completions that must satisfy the Protocols under both checkers."""

from __future__ import annotations

from dataclasses import dataclass

from lmstream.spec import Completion, Message

from ._shapes import Msg, MyCompletion

# A frozen dataclass with ``role: str`` is a Message; a frozen dataclass completion is a Completion.
message: Message = Msg("assistant", "hi")
no_text: Message = Msg("assistant", None)
completion: Completion = MyCompletion(Msg("assistant", "hi"), 3, 1)


# A plain (mutable) dataclass conforms too: a read-only Protocol member accepts a writable attribute.
@dataclass
class MutableCompletion:
    message: Msg
    prompt_tokens: int | None
    completion_tokens: int | None


mutable: Completion = MutableCompletion(Msg("user", "x"), None, None)


# A hand-written class with properties conforms; ``role`` may be any object (an enum member, here).
class PropertyMessage:
    @property
    def role(self) -> object:
        return object()

    @property
    def text(self) -> str:  # narrower than ``str | None``: fine for a read-only member
        return "x"


prop_message: Message = PropertyMessage()
