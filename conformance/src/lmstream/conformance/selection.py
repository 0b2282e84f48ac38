"""``-k EXPR``: choose checks by requirement ID, check name or level, as pytest's ``-k`` does.

An expression is words joined with ``and``, ``or``, ``not`` and parentheses (case-insensitive keywords).
A word matches a check when it is a case-insensitive substring of the check's test name
(``test_ES_3_at_most_one_completion_last``), its requirement ID (``ES-3``) or its level (``MUST``), with
one exception that makes IDs precise: a word that *is* a requirement ID (``ES-1``, ``es_1``, ``SM-10``)
matches that requirement only, so ``-k ES-1`` does not select ES-10 and ES-11 (pytest's ``-k ES_1``
would; use ``-k "ES_1_"`` there).

Examples: ``-k ES-3``, ``-k "aclose or cancel"``, ``-k "ES and not SHOULD"``,
``-k "(ES-2 or ES-3) and MUST"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .model import Check

__all__ = ["SelectionError", "compile_selection"]

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


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda c: a(c) or b(c)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda c: a(c) and b(c)


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _TOKEN.findall(expression)
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise SelectionError(f"-k {self.expression!r}: unexpected end of expression")
        self.position += 1
        return token

    def parse(self) -> Predicate:
        if not self.tokens:
            raise SelectionError("-k: empty expression")
        predicate = self.parse_or()
        if self.peek() is not None:
            raise SelectionError(f"-k {self.expression!r}: unexpected {self.peek()!r}")
        return predicate

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while (self.peek() or "").lower() == "or":
            self.take()
            right = self.parse_and()
            left = _either(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_not()
        while (self.peek() or "").lower() == "and":
            self.take()
            right = self.parse_not()
            left = _both(left, right)
        return left

    def parse_not(self) -> Predicate:
        if (self.peek() or "").lower() == "not":
            self.take()
            inner = self.parse_not()
            return lambda c: not inner(c)
        return self.parse_atom()

    def parse_atom(self) -> Predicate:
        token = self.take()
        if token == "(":
            inner = self.parse_or()
            if self.take() != ")":
                raise SelectionError(f"-k {self.expression!r}: expected ')'")
            return inner
        if token == ")" or token.lower() in _KEYWORDS:
            raise SelectionError(f"-k {self.expression!r}: unexpected {token!r}")
        return _word(token)


def compile_selection(expression: str) -> Predicate:
    """Compile a ``-k`` expression into a predicate over checks.

    :raises SelectionError: for an empty or malformed expression.
    """
    return _Parser(expression).parse()
