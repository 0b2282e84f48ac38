"""``-k EXPR``: choose checks by requirement ID, check name or level, as pytest's ``-k`` does.

An expression is words joined with ``and``, ``or``, ``not`` and parentheses (case-insensitive keywords).
A word matches a check when it is a case-insensitive substring of the check's test name
(``test_ES_3_at_most_one_completion_last``), its requirement ID (``ES-3``) or its level (``MUST``), with
one exception that makes IDs precise: a word that *is* a requirement ID (``ES-1``, ``es_1``, ``SM-10``)
matches that requirement only, so ``-k ES-1`` does not select ES-10 and ES-11 (pytest's ``-k ES_1``
would; use ``-k "ES_1_"`` there).

Examples: ``-k ES-3``, ``-k "aclose or cancel"``, ``-k "ES and not SHOULD"``,
``-k "(ES-2 or ES-3) and MUST"``.

Parentheses and ``not`` may nest at most :data:`MAX_DEPTH` deep, and an expression may have at most
:data:`MAX_WORDS` words: anything beyond is a :class:`SelectionError`, never a ``RecursionError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from .model import Check

__all__ = ["MAX_DEPTH", "MAX_WORDS", "SelectionError", "compile_selection"]

MAX_DEPTH: Final = 32
"""How deep parentheses and ``not`` may nest in a ``-k`` expression."""
MAX_WORDS: Final = 1000
"""How many words (and keywords) a ``-k`` expression may have."""

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
_ID_WORD = re.compile(r"^(es|sm)[-_]([1-9][0-9]*)$", re.IGNORECASE)
_KEYWORDS = {"and", "or", "not"}

Predicate = Callable[[Check], bool]


class SelectionError(ValueError):
    """A malformed ``-k`` expression; ``str()`` is one line saying what is wrong."""


def _word(word: str) -> Predicate:
    match = _ID_WORD.match(word)
    if match:
        rid = f"{match.group(1).upper()}-{match.group(2)}"
        return lambda c: c.requirement_id == rid
    needle = word.lower()
    return lambda c: needle in f"{c.test_name} {c.requirement_id} {c.level.value}".lower()


def _any(parts: list[Predicate]) -> Predicate:
    return parts[0] if len(parts) == 1 else lambda c: any(p(c) for p in parts)


def _all(parts: list[Predicate]) -> Predicate:
    return parts[0] if len(parts) == 1 else lambda c: all(p(c) for p in parts)


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _TOKEN.findall(expression)
        self.position = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise SelectionError(f"-k {_clip(self.expression)}: unexpected end of expression")
        self.position += 1
        return token

    def parse(self) -> Predicate:
        if not self.tokens:
            raise SelectionError("-k: empty expression")
        if len(self.tokens) > MAX_WORDS:
            raise SelectionError(
                f"-k: {len(self.tokens)} words and parentheses, more than the {MAX_WORDS} allowed"
            )
        predicate = self.parse_or()
        if self.peek() is not None:
            raise SelectionError(f"-k {_clip(self.expression)}: unexpected {self.peek()!r}")
        return predicate

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while (self.peek() or "").lower() == "or":
            self.take()
            parts.append(self.parse_and())
        return _any(parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while (self.peek() or "").lower() == "and":
            self.take()
            parts.append(self.parse_not())
        return _all(parts)

    def parse_not(self) -> Predicate:
        negations = 0
        while (self.peek() or "").lower() == "not":
            self.take()
            negations += 1
            self.deeper()
        inner = self.parse_atom()
        self.depth -= negations
        if negations % 2:
            return lambda c: not inner(c)
        return inner

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SelectionError(
                f"-k: parentheses and 'not' nest more than {MAX_DEPTH} deep in {_clip(self.expression)}"
            )

    def parse_atom(self) -> Predicate:
        token = self.take()
        if token == "(":
            self.deeper()
            inner = self.parse_or()
            if self.take() != ")":
                raise SelectionError(f"-k {_clip(self.expression)}: expected ')'")
            self.depth -= 1
            return inner
        if token == ")" or token.lower() in _KEYWORDS:
            raise SelectionError(f"-k {_clip(self.expression)}: unexpected {token!r}")
        return _word(token)


def _clip(expression: str) -> str:
    return repr(expression) if len(expression) <= 60 else repr(expression[:57] + "...")


def compile_selection(expression: str) -> Predicate:
    """Compile a ``-k`` expression into a predicate over checks.

    :raises SelectionError: for an empty or malformed expression.
    """
    return _Parser(expression).parse()
