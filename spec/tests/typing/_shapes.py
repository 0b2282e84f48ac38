"""Shared conforming shapes for the typing cases: frozen-dataclass messages and completions.

Not a test by itself; the ``*_pass.py`` and ``*_fail.py`` files import from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Msg:
    """A message: ``role`` is a plain ``str`` (kani uses an enum; both conform)."""

    role: str
    text: str | None


@dataclass(frozen=True)
class MyCompletion:
    """A completion as a frozen dataclass: read-only fields satisfy the Protocol's properties."""

    message: Msg
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
