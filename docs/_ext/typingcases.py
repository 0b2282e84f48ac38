"""``.. lmstream-typing-cases:: DIRECTORY`` lists the negative static-typing cases, read from the case files.

The typing suite (``spec/tests/typing``) marks every line the type checkers must reject with
``# type: ignore[<mypy code>]  # <why>``, or ``# type: ignore[<mypy code>]  # mypy-only: <why>`` for a
line only mypy rejects, and ``spec/tests/test_typing_cases.py`` proves that each marked line is reported
(by mypy with that code, by pyright with the matching rule unless the line is mypy-only). This directive
renders those markers: for each ``*_fail.py`` file, its docstring's first paragraph, then a table with one
row per marked line: the case (the comment that introduces it, as reST, and the note after the marker, as
written), the rejected line, mypy's error code and which checkers reject it. Editing a case file changes
the page on the next build; nothing is copied.

``DIRECTORY`` is relative to the document, as for ``literalinclude``. The option ``:files:`` names the
files to show, as stems separated by spaces (``engines_fail managers_fail``), in that order; by default
every ``*_fail.py`` file, alphabetically. A named file that does not exist, or a file without a marked
line, is an error.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.nodes import Node
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from lmstream.spec import SPEC_VERSION

from .spectext import link_requirement_ids
from .tables import table

__all__ = ["NegativeCase", "TypingCasesDirective", "read_cases", "setup", "summary"]

_MARKER = re.compile(r"#\s*type:\s*ignore\[(?P<codes>[^\]]*)\]\s*(?:#\s*(?P<why>.*))?$")
_MYPY_ONLY = "mypy-only:"


@dataclass(frozen=True)
class NegativeCase:
    """One marked line of a ``*_fail.py`` case file."""

    line: int
    statement: str
    """The rejected line, without its marker (and without its indentation)."""
    mypy_codes: tuple[str, ...]
    why: str
    """The comment after the marker (``mypy-only:`` removed), or ``""``."""
    description: str
    """The comment lines that introduce the case (the last block of whole-line comments between the
    previous marked line and this one), joined; ``""`` when there are none."""
    mypy_only: bool


def _comments(source: str) -> list[tuple[int, int, str]]:
    """Every real comment (not text inside a string): ``(line, column, text)``."""
    return [
        (token.start[0], token.start[1], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]


def read_cases(source: str) -> list[NegativeCase]:
    """The marked lines of a case file's ``source``, in order."""
    lines = source.splitlines()
    cases: list[NegativeCase] = []
    block: list[str] = []  # the current run of whole-line comments
    block_end = 0  # the line the run ended on
    for line, column, text in _comments(source):
        physical = lines[line - 1]
        if not physical[:column].strip():  # a comment alone on its line
            if line != block_end + 1:
                block = []
            block.append(text.lstrip("#").strip())
            block_end = line
            continue
        marker = _MARKER.search(text)
        if marker is None:
            continue
        why = (marker.group("why") or "").strip()
        mypy_only = why.startswith(_MYPY_ONLY)
        if mypy_only:
            why = why[len(_MYPY_ONLY) :].strip()
        cases.append(
            NegativeCase(
                line=line,
                statement=physical[:column].strip(),
                mypy_codes=tuple(code.strip() for code in marker.group("codes").split(",") if code.strip()),
                why=why,
                description=" ".join(block),
                mypy_only=mypy_only,
            )
        )
        block = []
    return cases


def summary(source: str) -> str:
    """The first paragraph of the module docstring, on one line (``""`` when there is none)."""
    docstring = ast.get_docstring(ast.parse(source)) or ""
    return " ".join(docstring.split("\n\n")[0].split())


class TypingCasesDirective(SphinxDirective):
    """One table of negative typing cases per case file."""

    required_arguments = 1
    option_spec: ClassVar[dict[str, Callable[[str], Any]] | None] = {"files": directives.unchanged}

    def run(self) -> list[Node]:
        _, absolute = self.env.relfn2path(self.arguments[0])
        directory = Path(absolute)
        if not directory.is_dir():
            raise self.error(f"{self.arguments[0]!r} is not a directory of typing cases")
        named = self.options.get("files")
        if named:
            files = [directory / f"{stem}.py" for stem in str(named).split()]
            missing = [path.name for path in files if not path.is_file()]
            if missing:
                raise self.error(f"no such case file in {self.arguments[0]!r}: {', '.join(missing)}")
        else:
            files = sorted(directory.glob("*_fail.py"))
        self.env.note_dependency(__file__)
        result: list[Node] = []
        for path in files:
            self.env.note_dependency(str(path))
            source = path.read_text(encoding="utf-8")
            cases = read_cases(source)
            if not cases:
                raise self.error(f"{path.name} has no line marked # type: ignore[...]")
            result.extend(self._file(path.name, summary(source), cases))
        return result

    def _inline(self, text: str) -> list[Node]:
        lines = [text]
        link_requirement_ids(lines)  # requirement IDs in the comments link to the spec
        parsed, problems = self.parse_inline(lines[0], lineno=self.lineno)
        return [*parsed, *problems]

    def _file(self, name: str, about: str, cases: list[NegativeCase]) -> list[Node]:
        heading = nodes.paragraph()
        heading += nodes.literal(name, name)
        if about:
            heading += nodes.Text(": ")
            heading += self._inline(about)
        rows: list[list[Node | str]] = []
        for case in cases:
            what = nodes.paragraph()
            if case.description:
                what += self._inline(case.description)
            if case.why:  # a terse note after the marker, not reST: shown as written
                what += nodes.Text(f" ({case.why})" if case.description else case.why)
            line = nodes.paragraph()
            line += nodes.literal(case.statement, case.statement)
            codes = nodes.paragraph()
            for i, code in enumerate(case.mypy_codes):
                if i:
                    codes += nodes.Text(", ")
                codes += nodes.literal(code, code)
            rows.append([what, line, codes, "mypy only" if case.mypy_only else "both"])
        return [
            heading,
            table(
                ["Case", "Rejected line", "mypy code", "Rejected by"],
                rows,
                widths=[34, 44, 12, 10],
                classes=["lmstream-typing-cases"],
            ),
        ]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register ``lmstream-typing-cases``."""
    app.add_directive("lmstream-typing-cases", TypingCasesDirective)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
