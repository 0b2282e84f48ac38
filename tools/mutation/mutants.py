"""The mutants of a Python module: one small change each, named stably, applied as a text edit.

:func:`mutants_of` parses a module, walks it and lists every mutant the :data:`OPERATORS` make (the
package docstring describes them). Each :class:`Mutant` is a text edit of the source (a span and what
replaces it), so the rest of the file, its comments and its line numbers stay as they were, and also the
same change made to the syntax tree (:meth:`Mutant.apply_tree`), so a test can prove that the text edit
makes exactly the intended program. A mutant's :attr:`Mutant.id` names it by file, function, operator and
the original and mutated source of the node (plus ``#n`` for the n-th identical change in one function):
no line number, so the ID survives edits elsewhere in the file.
"""

from __future__ import annotations

import ast
import copy
import enum
import hashlib
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

__all__ = ["MUTATED_FILES", "OPERATORS", "REFERENCE_DIR", "Mutant", "mutants_of", "reference_mutants"]

REFERENCE_DIR: Final = Path(__file__).resolve().parents[2] / "reference" / "src" / "lmstream" / "reference"
"""The reference package: what is copied, then mutated, for each mutant."""

MUTATED_FILES: Final[tuple[str, ...]] = ("manager.py", "_cancel.py", "rounds.py")
"""The files of the reference that are mutated (``messages.py`` holds data classes only)."""

OPERATORS: Final[dict[str, str]] = {
    "compare": "a comparison flipped to its negation",
    "identity": "an identity or membership test flipped",
    "and_or": "and / or swapped",
    "not": "a not dropped",
    "bool": "True / False flipped",
    "condition": "a condition negated",
    "statement": "a simple statement deleted",
    "block": "a block emptied",
    "return_none": "return x becomes return None",
    "broaden": "a handler broadened to BaseException",
    "narrow": "a handler narrowed or removed",
    "enum": "an enum member swapped",
    "number": "an integer constant changed",
    "string": "a string constant changed",
    "argument": "an argument dropped from a call",
}
"""Every operator by name (the names are part of mutant IDs), with a few words for reports."""

_SEPARATOR: Final = " -- "
"""What separates an ID from its reason in ``equivalent.txt``; unparsed code never contains it."""

_FLIPS: Final[dict[type[ast.cmpop], type[ast.cmpop]]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_IDENTITY: Final = (ast.Is, ast.IsNot, ast.In, ast.NotIn)
_SIMPLE: Final = (
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Raise,
    ast.Return,
    ast.Delete,
    ast.Break,
    ast.Continue,
)
"""The statements ``statement`` deletes."""
_NOT_MUTATED: Final = (ast.Import, ast.ImportFrom, ast.Assert, ast.Global, ast.Nonlocal, ast.JoinedStr)
"""Nodes left alone with everything inside them: imports, invariants, f-strings (diagnostic text)."""
_TARGETS: Final = frozenset({"targets", "target", "optional_vars", "annotation", "returns", "decorator_list"})
"""Fields never mutated: assignment targets, annotations, decorators."""
_UNMUTATED_NAMES: Final = frozenset({"__all__", "__slots__"})
_UNMUTATED_FUNCTIONS: Final = frozenset({"__repr__"})
_UNMUTATED_CALLS: Final = frozenset({"TypeVar", "cast"})

Step = tuple[str, int | None]
"""One step of a path into a tree: a field, and the index in it when it is a list."""


@dataclass(frozen=True)
class Mutant:
    """One change to one file of a package.

    :ivar file: the file's name in its package, e.g. ``manager.py``.
    :ivar function: where the change is: ``Class.method``, ``function``, ``Class`` (a class body) or
        ``<module>``.
    :ivar operator: the operator that made it (a key of :data:`OPERATORS`).
    :ivar original: the node's source before the change, on one line (shortened with a hash when long).
    :ivar mutated: the same after the change.
    :ivar occurrence: 1 for the first change with these five names in the function, 2 for the next, ...
    :ivar line: where the change begins in the current source (for reports only; never part of the ID).
    """

    file: str
    function: str
    operator: str
    original: str
    mutated: str
    occurrence: int
    line: int
    _start: int = field(repr=False)
    _end: int = field(repr=False)
    _text: str = field(repr=False)
    _tree_edit: Callable[[ast.Module], None] = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        """``file::function::operator::original => mutated``, plus `` #n`` from the second occurrence on."""
        suffix = f" #{self.occurrence}" if self.occurrence > 1 else ""
        return f"{self.file}::{self.function}::{self.operator}::{self.original} => {self.mutated}{suffix}"

    def apply(self, source: str) -> str:
        """The mutated source of the file this mutant was made from (``source`` must be that file's text)."""
        return source[: self._start] + self._text + source[self._end :]

    def apply_tree(self, tree: ast.Module) -> ast.Module:
        """The same change made to a copy of the file's syntax tree."""
        changed = copy.deepcopy(tree)
        self._tree_edit(changed)
        return changed


def reference_mutants(files: Sequence[str] = MUTATED_FILES) -> list[Mutant]:
    """Every mutant of the reference's ``files`` (names in :data:`REFERENCE_DIR`), in file order."""
    found: list[Mutant] = []
    for name in files:
        path = REFERENCE_DIR / name
        found += mutants_of(path.read_text(encoding="utf-8"), name, package="lmstream.reference")
    return found


def mutants_of(source: str, file: str, *, package: str | None = None) -> list[Mutant]:
    """Every mutant of one module's ``source``, in source order, without duplicates.

    :param file: the name the IDs give the file.
    :param package: the module's package, to resolve relative imports of enums (``from .x import E``).
    :raises SyntaxError: if ``source`` does not parse.
    :raises ValueError: if an ID would contain the separator of ``equivalent.txt``.
    """
    tree = ast.parse(source)
    collector = _Collector(source, _enums_of(tree, package))
    collector.visit_body(tree, (), "<module>")
    seen_texts: set[str] = set()
    counts: dict[tuple[str, str, str, str], int] = {}
    made: list[Mutant] = []
    for found in sorted(collector.found, key=lambda f: (f.start, f.order)):
        mutated_source = source[: found.start] + found.text + source[found.end :]
        if mutated_source == source or mutated_source in seen_texts:
            continue  # two operators made the same program: keep the first
        seen_texts.add(mutated_source)
        key = (found.function, found.operator, found.original, found.mutated)
        counts[key] = counts.get(key, 0) + 1
        mutant = Mutant(
            file,
            found.function,
            found.operator,
            found.original,
            found.mutated,
            counts[key],
            found.line,
            found.start,
            found.end,
            found.text,
            found.tree_edit,
        )
        if _SEPARATOR in mutant.id:
            raise ValueError(f"the ID of a mutant contains {_SEPARATOR!r}: {mutant.id}")
        made.append(mutant)
    return made


# ---------------------------------------------------------------------------------------------- internals
@dataclass(frozen=True)
class _Found:
    function: str
    operator: str
    original: str
    mutated: str
    line: int
    start: int
    end: int
    text: str
    tree_edit: Callable[[ast.Module], None]
    order: int


def _one_line(text: str, limit: int = 100) -> str:
    """``text`` with its whitespace collapsed; shortened, with a hash of the whole, past ``limit``."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    digest = hashlib.sha1(flat.encode()).hexdigest()[:8]
    return f"{flat[: limit - 20]}... [{digest}]"


def _source(node: ast.AST) -> str:
    return _one_line(ast.unparse(node))


def _resolve(tree: ast.AST, path: Sequence[Step]) -> Any:
    """The node (or list of nodes) ``path`` leads to: ``ast`` gives its fields no types to follow."""
    node: Any = tree
    for name, index in path:
        node = getattr(node, name)
        if index is not None:
            node = node[index]
    return node


def _replace_at(path: tuple[Step, ...], new: ast.AST) -> Callable[[ast.Module], None]:
    """A tree edit that puts ``new`` where ``path`` leads."""

    def edit(tree: ast.Module) -> None:
        parent = _resolve(tree, path[:-1])
        name, index = path[-1]
        if index is None:
            setattr(parent, name, copy.deepcopy(new))
        else:
            getattr(parent, name)[index] = copy.deepcopy(new)

    return edit


def _splice_at(
    path: tuple[Step, ...], start: int, stop: int, new: list[ast.AST]
) -> Callable[[ast.Module], None]:
    """A tree edit that replaces items ``start:stop`` of the list ``path`` leads to with ``new``."""

    def edit(tree: ast.Module) -> None:
        parent = _resolve(tree, path[:-1])
        name, _ = path[-1]
        getattr(parent, name)[start:stop] = copy.deepcopy(new)

    return edit


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names: set[str] = set()
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Name):
            names.add(decorator.id)
        elif isinstance(decorator, ast.Attribute):
            names.add(decorator.attr)
    return names


def _skipped_statement(statement: ast.stmt) -> bool:
    """Statements left alone entirely (see the package docstring)."""
    if isinstance(statement, _NOT_MUTATED) or _is_docstring(statement):
        return True  # a bare string is a docstring wherever it is (an attribute's, after its assignment)
    if isinstance(statement, ast.AnnAssign) and statement.value is None:
        return True  # a bare annotation does nothing
    if isinstance(statement, ast.Assign):
        names = {t.id for t in statement.targets if isinstance(t, ast.Name)}
        if names & _UNMUTATED_NAMES:
            return True
        value = statement.value
        if isinstance(value, ast.Call) and _called_name(value) in _UNMUTATED_CALLS:
            return True
    if isinstance(statement, ast.If) and isinstance(statement.test, ast.Name):
        return statement.test.id == "TYPE_CHECKING"
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
        return statement.name in _UNMUTATED_FUNCTIONS or "overload" in _decorator_names(statement)
    return False


def _enums_of(tree: ast.Module, package: str | None) -> dict[str, tuple[str, ...]]:
    """The enums a module can name, by the name it uses, with their members in definition order: its
    own enum classes, and enum classes it imports by name (``from lmstream.spec import StreamState``)."""
    enums: dict[str, tuple[str, ...]] = {}
    for statement in tree.body:
        if isinstance(statement, ast.ClassDef) and any(
            (isinstance(b, ast.Attribute) and b.attr.endswith("Enum"))
            or (isinstance(b, ast.Name) and b.id.endswith("Enum"))
            for b in statement.bases
        ):
            members = [
                target.id
                for item in statement.body
                if isinstance(item, ast.Assign)
                for target in item.targets
                if isinstance(target, ast.Name) and not target.id.startswith("_")
            ]
            enums[statement.name] = tuple(members)
        elif isinstance(statement, ast.ImportFrom) and statement.module is not None:
            module_name = "." * statement.level + statement.module
            try:
                module = importlib.import_module(module_name, package if statement.level else None)
            except ImportError:
                continue
            for alias in statement.names:
                imported: object = getattr(module, alias.name, None)
                if isinstance(imported, type) and issubclass(imported, enum.Enum):
                    enums[alias.asname or alias.name] = tuple(member.name for member in imported)
    return enums


class _Positions:
    """Character offsets of the AST's (line, UTF-8 byte column) positions in a source string."""

    def __init__(self, source: str) -> None:
        self._lines = source.splitlines(keepends=True)
        self._starts: list[int] = []
        offset = 0
        for line in self._lines:
            self._starts.append(offset)
            offset += len(line)
        self._starts.append(offset)

    def offset(self, line: int, column: int) -> int:
        text = self._lines[line - 1] if line - 1 < len(self._lines) else ""
        return self._starts[line - 1] + len(text.encode("utf-8")[:column].decode("utf-8"))

    def span(self, first: ast.AST, last: ast.AST | None = None) -> tuple[int, int, int]:
        """``(start, end, lines)`` from ``first``'s start to ``last``'s end (``first``'s by default);
        ``lines`` is the number of line breaks inside, which the replacement keeps."""
        last = first if last is None else last
        start_line, start_col = getattr(first, "lineno"), getattr(first, "col_offset")  # noqa: B009
        end_line, end_col = getattr(last, "end_lineno"), getattr(last, "end_col_offset")  # noqa: B009
        return self.offset(start_line, start_col), self.offset(end_line, end_col), end_line - start_line


class _Collector:
    """Walks a module and records every change the operators can make to it."""

    def __init__(self, source: str, enums: dict[str, tuple[str, ...]]) -> None:
        self.found: list[_Found] = []
        self._source = source
        self._positions = _Positions(source)
        self._enums = enums

    # ------------------------------------------------------------------ recording
    def _record(
        self,
        function: str,
        operator: str,
        original: str,
        mutated: str,
        node: ast.AST,
        span: tuple[int, int, int],
        text: str,
        tree_edit: Callable[[ast.Module], None],
    ) -> None:
        start, end, _ = span
        self.found.append(
            _Found(
                function,
                operator,
                original,
                mutated,
                getattr(node, "lineno", 0),
                start,
                end,
                text,
                tree_edit,
                len(self.found),
            )
        )

    def _replace_expr(
        self, function: str, operator: str, path: tuple[Step, ...], old: ast.expr, new: ast.expr
    ) -> None:
        """Record ``old`` (at ``path``) replaced by ``new``, written in parentheses (valid wherever an
        expression is), with the line breaks of the original kept inside them."""
        span = self._positions.span(old)
        text = f"({ast.unparse(new)}{chr(10) * span[2]})"
        self._record(function, operator, _source(old), _source(new), old, span, text, _replace_at(path, new))

    def _replace_statements(
        self,
        function: str,
        operator: str,
        path: tuple[Step, ...],
        statements: Sequence[ast.AST],
        start: int,
        original: str,
        mutated: str,
        keep: list[ast.AST],
    ) -> None:
        """Record ``statements`` (items ``start:start+len`` of the list at ``path``) replaced by ``keep``
        (``[Pass]`` or nothing), the line breaks kept."""
        span = self._positions.span(statements[0], statements[-1])
        text = ("pass" if keep else "") + "\n" * span[2]
        edit = _splice_at(path, start, start + len(statements), keep)
        self._record(function, operator, original, mutated, statements[0], span, text, edit)

    # ------------------------------------------------------------------ statements
    def visit_body(self, owner: ast.AST, path: tuple[Step, ...], function: str) -> None:
        """Visit the statements of ``owner``'s ``body`` (a module, class or function)."""
        body: list[ast.stmt] = getattr(owner, "body")  # noqa: B009
        for index, statement in enumerate(body):
            self._statement(statement, (*path, ("body", index)), function)

    def _statement(self, statement: ast.stmt, path: tuple[Step, ...], function: str) -> None:
        if _skipped_statement(statement):
            return
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            inner = statement.name if function in ("<module>",) else f"{function}.{statement.name}"
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                self._arguments(statement.args, (*path, ("args", None)), inner)
            self.visit_body(statement, path, inner)
            return
        if isinstance(statement, _SIMPLE):
            self._record_delete(statement, path, function)
        if isinstance(statement, ast.Return) and statement.value is not None:
            value = statement.value
            if not (isinstance(value, ast.Constant) and value.value is None):
                self._replace_expr(
                    function, "return_none", (*path, ("value", None)), value, ast.Constant(None)
                )
        if isinstance(statement, ast.If | ast.While):
            self._condition(statement.test, (*path, ("test", None)), function)
        if isinstance(statement, ast.Try):
            self._try(statement, path, function)
        self._blocks(statement, path, function)
        for name, value in ast.iter_fields(statement):
            if name in _TARGETS or name in ("body", "orelse", "finalbody", "handlers"):
                continue
            self._child(value, (*path, (name, None)), function)
        for name in ("body", "orelse", "finalbody"):
            block: list[ast.stmt] = getattr(statement, name, None) or []
            for index, nested in enumerate(block):
                self._statement(nested, (*path, (name, index)), function)

    def _record_delete(self, statement: ast.stmt, path: tuple[Step, ...], function: str) -> None:
        name, index = path[-1]
        assert index is not None
        self._replace_statements(
            function,
            "statement",
            (*path[:-1], (name, None)),
            [statement],
            index,
            _source(statement),
            "pass",
            [ast.Pass()],
        )

    def _blocks(self, statement: ast.stmt, path: tuple[Step, ...], function: str) -> None:
        """``block``: each block of a compound statement emptied."""
        header = _header(statement)
        if header is None:
            return
        for name in ("body", "orelse", "finalbody"):
            block: list[ast.stmt] = getattr(statement, name, None) or []
            if not _worth_emptying(block) or (name == "orelse" and self._is_elif(statement, block)):
                continue
            label = {"body": header, "orelse": f"else (of {header})", "finalbody": "finally:"}[name]
            self._empty(function, (*path, (name, None)), block, label)

    def _empty(self, function: str, path: tuple[Step, ...], block: list[ast.stmt], label: str) -> None:
        body = "; ".join(ast.unparse(s).split("\n", 1)[0] for s in block)
        self._replace_statements(
            function, "block", path, block, 0, _one_line(f"{label} {body}"), f"{label} pass", [ast.Pass()]
        )

    def _is_elif(self, statement: ast.stmt, orelse: list[ast.stmt]) -> bool:
        """Whether ``orelse`` is written ``elif ...:`` (emptying it would not make valid code)."""
        if not (isinstance(statement, ast.If) and len(orelse) == 1 and isinstance(orelse[0], ast.If)):
            return False
        return self._source.startswith("elif", self._positions.offset(orelse[0].lineno, orelse[0].col_offset))

    def _try(self, statement: ast.Try, path: tuple[Step, ...], function: str) -> None:
        removable = len(statement.handlers) > 1 or bool(statement.finalbody)
        for index, handler in enumerate(statement.handlers):
            here = (*path, ("handlers", index))
            label = f"except {ast.unparse(handler.type)}" if handler.type is not None else "except"
            label += f" as {handler.name}:" if handler.name else ":"
            if handler.type is not None:
                self._handler_type(handler.type, (*here, ("type", None)), function)
            if removable:
                self._replace_statements(
                    function,
                    "narrow",
                    (*path, ("handlers", None)),
                    [handler],
                    index,
                    _one_line(f"{label} {ast.unparse(handler.body[0])}"),
                    "(handler removed)",
                    [],
                )
            if _worth_emptying(handler.body):
                self._empty(function, (*here, ("body", None)), handler.body, label)
            for inner_index, inner in enumerate(handler.body):
                self._statement(inner, (*here, ("body", inner_index)), function)

    def _handler_type(self, kind: ast.expr, path: tuple[Step, ...], function: str) -> None:
        if not (isinstance(kind, ast.Name) and kind.id == "BaseException"):
            self._replace_expr(function, "broaden", path, kind, ast.Name("BaseException", ast.Load()))
        if isinstance(kind, ast.Name) and kind.id == "BaseException":
            self._replace_expr(function, "narrow", path, kind, ast.Name("Exception", ast.Load()))
        if isinstance(kind, ast.Tuple):
            for index in range(len(kind.elts)):
                rest = [e for i, e in enumerate(kind.elts) if i != index]
                new: ast.expr = rest[0] if len(rest) == 1 else ast.Tuple(rest, ast.Load())
                self._replace_expr(function, "narrow", path, kind, new)

    def _condition(self, test: ast.expr, path: tuple[Step, ...], function: str) -> None:
        """``condition``: a test negated, unless another operator already flips it."""
        if isinstance(test, ast.Compare | ast.Constant) or (
            isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
        ):
            return
        self._replace_expr(function, "condition", path, test, ast.UnaryOp(ast.Not(), test))

    def _arguments(self, arguments: ast.arguments, path: tuple[Step, ...], function: str) -> None:
        """Default values of parameters are expressions like any other (their annotations are not)."""
        for index, default in enumerate(arguments.defaults):
            self._expression(default, (*path, ("defaults", index)), function)
        for index, kw_default in enumerate(arguments.kw_defaults):
            if kw_default is not None:
                self._expression(kw_default, (*path, ("kw_defaults", index)), function)

    # ------------------------------------------------------------------ expressions
    def _child(self, value: object, path: tuple[Step, ...], function: str) -> None:
        if isinstance(value, ast.expr):
            self._expression(value, path, function)
        elif isinstance(value, list):
            name, _ = path[-1]
            for index, item in enumerate(cast("list[object]", value)):
                self._child(item, (*path[:-1], (name, index)), function)
        elif isinstance(value, ast.keyword):
            self._expression(value.value, (*path, ("value", None)), function)
        elif isinstance(value, ast.withitem):
            self._expression(value.context_expr, (*path, ("context_expr", None)), function)
        elif isinstance(value, ast.comprehension):
            self._expression(value.iter, (*path, ("iter", None)), function)
            for index, test in enumerate(value.ifs):
                self._expression(test, (*path, ("ifs", index)), function)

    def _expression(self, node: ast.expr, path: tuple[Step, ...], function: str) -> None:
        if isinstance(node, _NOT_MUTATED) or isinstance(getattr(node, "ctx", None), ast.Store | ast.Del):
            return
        if isinstance(node, ast.Call) and _called_name(node) in _UNMUTATED_CALLS:
            return
        for operator, new in self._variants(node):
            self._replace_expr(function, operator, path, node, new)
        if isinstance(node, ast.IfExp):
            self._condition(node.test, (*path, ("test", None)), function)
        if isinstance(node, ast.Lambda):
            self._expression(node.body, (*path, ("body", None)), function)
            return
        for name, value in ast.iter_fields(node):
            if name not in _TARGETS:
                self._child(value, (*path, (name, None)), function)

    def _variants(self, node: ast.expr) -> Iterator[tuple[str, ast.expr]]:
        """The operators' replacements of ``node`` itself (not of its parts)."""
        if isinstance(node, ast.Compare):
            for index, op in enumerate(node.ops):
                flipped = _FLIPS.get(type(op))
                if flipped is not None:
                    ops = [*node.ops[:index], flipped(), *node.ops[index + 1 :]]
                    yield (
                        ("identity" if isinstance(op, _IDENTITY) else "compare"),
                        ast.Compare(node.left, ops, node.comparators),
                    )
        elif isinstance(node, ast.BoolOp):
            yield "and_or", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield "not", node.operand
        elif isinstance(node, ast.Constant):
            yield from _constant_variants(node.value)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            for member in self._enums.get(node.value.id, ()):
                if member != node.attr:
                    yield "enum", ast.Attribute(node.value, member, ast.Load())
        elif isinstance(node, ast.Call):
            for index in range(len(node.args)):
                yield (
                    "argument",
                    ast.Call(node.func, [a for i, a in enumerate(node.args) if i != index], node.keywords),
                )
            for index in range(len(node.keywords)):
                kept = [k for i, k in enumerate(node.keywords) if i != index]
                yield "argument", ast.Call(node.func, node.args, kept)


def _constant_variants(value: object) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(value, bool):
        yield "bool", ast.Constant(not value)
    elif isinstance(value, int):
        yield "number", ast.Constant(value + 1)
        if value != 0:
            yield "number", ast.Constant(0)
    elif isinstance(value, str):
        yield "string", ast.Constant("" if value else "mutant")


def _header(statement: ast.stmt) -> str | None:
    """How a compound statement's first block is named in IDs (``if x is None:``), or ``None``."""
    if isinstance(statement, ast.If):
        return f"if {ast.unparse(statement.test)}:"
    if isinstance(statement, ast.While):
        return f"while {ast.unparse(statement.test)}:"
    if isinstance(statement, ast.For | ast.AsyncFor):
        prefix = "async for" if isinstance(statement, ast.AsyncFor) else "for"
        return f"{prefix} {ast.unparse(statement.target)} in {ast.unparse(statement.iter)}:"
    if isinstance(statement, ast.With | ast.AsyncWith):
        prefix = "async with" if isinstance(statement, ast.AsyncWith) else "with"
        return f"{prefix} {', '.join(ast.unparse(item) for item in statement.items)}:"
    if isinstance(statement, ast.Try):
        return "try:"
    return None


def _worth_emptying(block: Sequence[ast.stmt]) -> bool:
    """A block ``block`` empties: not already ``pass``, and not one simple statement (``statement``'s)."""
    if not block or all(isinstance(s, ast.Pass) for s in block):
        return False
    return not (len(block) == 1 and isinstance(block[0], _SIMPLE))
