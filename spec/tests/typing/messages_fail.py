"""Negative cases: messages and completions both checkers must reject at the marked line.

Each offending line carries ``# type: ignore[<mypy code>]``. mypy's ``warn_unused_ignores`` (strict) and
pyright's ``reportUnnecessaryTypeIgnoreComment = "error"`` (pyproject) fail if the error ever disappears.
``test_typing_cases.py`` strips the markers and shows both checkers report each line.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmstream.spec import Completion, Message

from ._shapes import Msg


# A completion missing ``completion_tokens``.
@dataclass(frozen=True)
class NoCompletionTokens:
    message: Msg
    prompt_tokens: int | None


missing_tokens: Completion = NoCompletionTokens(Msg("assistant", "x"), 1)  # type: ignore[assignment]


# Token counts typed ``str``.
@dataclass(frozen=True)
class StrTokens:
    message: Msg
    prompt_tokens: str
    completion_tokens: str


str_tokens: Completion = StrTokens(Msg("assistant", "x"), "1", "2")  # type: ignore[assignment]


# A message whose ``text`` is ``int``.
@dataclass(frozen=True)
class IntText:
    role: str
    text: int


int_text: Message = IntText("assistant", 1)  # type: ignore[assignment]
