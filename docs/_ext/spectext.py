"""Requirement IDs and RFC 2119 keywords in text: the pure text work behind the spec's rendering.

:func:`split_spec_text` cuts registry text into plain text, keywords and IDs (the spec page sets keywords
in bold and links IDs); :func:`link_requirement_ids` rewrites the IDs in a docstring as ``:req:`` roles, so
the API reference links to the spec. No Sphinx here.
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = ["Segment", "link_requirement_ids", "split_spec_text"]

_KEYWORDS: Final = (
    "MUST NOT",
    "MUST",
    "SHALL NOT",
    "SHALL",
    "SHOULD NOT",
    "SHOULD",
    "NOT RECOMMENDED",
    "RECOMMENDED",
    "REQUIRED",
    "MAY",
    "OPTIONAL",
)
_SPEC_TEXT_RE: Final = re.compile(
    r"(?P<id>\b(?:ES|SM)-[1-9][0-9]*\b)|(?<![A-Za-z])(?P<keyword>" + "|".join(_KEYWORDS) + r")(?![A-Za-z])"
)

Segment = tuple[Literal["text", "keyword", "id"], str]
"""A piece of registry text and what it is."""


def split_spec_text(text: str) -> list[Segment]:
    """Split registry text into plain text, RFC 2119 keywords (capitals only) and requirement IDs."""
    segments: list[Segment] = []
    position = 0
    for match in _SPEC_TEXT_RE.finditer(text):
        if match.start() > position:
            segments.append(("text", text[position : match.start()]))
        if match.group("id"):
            segments.append(("id", match.group("id")))
        else:
            segments.append(("keyword", match.group("keyword")))
        position = match.end()
    if position < len(text):
        segments.append(("text", text[position:]))
    return segments


_PROTECTED_RE: Final = re.compile(r"(``.+?``|:[\w:+.-]+:`[^`]*`|`[^`]*`_{0,2})")
_DOCSTRING_ID_RE: Final = re.compile(r"(?<![\w-])((?:ES|SM)-[1-9][0-9]*)(?![\w-])")
_CODE_DIRECTIVE_RE: Final = re.compile(
    r"^\s*\.\. (code-block|code|sourcecode|doctest|testcode|testoutput|parsed-literal)::"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def link_requirement_ids(lines: list[str]) -> None:
    """Turn each requirement ID in reST ``lines`` (a docstring) into a ``:req:`` role, in place.

    IDs inside inline literals, roles, interpreted text, literal blocks (after ``::``), code and doctest
    directives and ``>>>`` blocks are left alone. An ID the registry lacks becomes a role all the same,
    so a stale ID in a docstring fails the build where it is written.
    """
    code_indent: int | None = None  # set while inside an indented code block: the indent that opened it
    in_doctest = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if code_indent is not None:
            if not stripped or _indent(line) > code_indent:
                continue
            code_indent = None
        if in_doctest:
            if stripped:
                continue
            in_doctest = False
            continue
        if stripped.startswith(">>>"):
            in_doctest = True
            continue
        if _CODE_DIRECTIVE_RE.match(line) or stripped.endswith("::"):
            code_indent = _indent(line)
        pieces = _PROTECTED_RE.split(line)
        for j in range(0, len(pieces), 2):  # even indices are outside literals and roles
            pieces[j] = _DOCSTRING_ID_RE.sub(r":req:`\1`", pieces[j])
        lines[i] = "".join(pieces)
