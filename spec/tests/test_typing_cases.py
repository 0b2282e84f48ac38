"""The static typing cases in tests/typing/ are load-bearing under both mypy and pyright.

``make mypy`` and ``make pyright`` check the case files as they are: the ``*_pass.py`` files must be
clean, and every ``# type: ignore[...]`` marker on a negative line must be needed (mypy's
``warn_unused_ignores``, pyright's ``reportUnnecessaryTypeIgnoreComment``). That alone does not show that
*both* checkers report each negative line: pyright honours a ``# type: ignore`` whatever code it names,
and one checker's error is enough to make the marker "used" for it. So this test copies the cases to a
temporary package, strips the markers from the ``*_fail.py`` files, runs each checker once over all of
them (strict, with the project's configuration), and compares what each reports with the markers:

* a line marked ``# type: ignore[code]`` is reported by both checkers, by mypy with one of the codes;
* a line marked ``# type: ignore[code]  # mypy-only: <why>`` is reported by mypy and *not* by pyright
  (a known disagreement, see typing/README.md); its file must start with the pyright comment that turns
  off ``reportUnnecessaryTypeIgnoreComment``, and no other file may;
* no unmarked line of a ``*_fail.py`` file, and no line of any other case file, is reported by either;
* pyright's rule for a line matches mypy's code (``PYRIGHT_RULES``), so an unrelated strict-mode
  complaint on the same line cannot stand in for the error the case is about.

A canary written into the copy (a needless marker and an unmarked error) shows the comparison fails
when it should.

The fail files are given to pyright before the pass files: pyright caches protocol mismatches across
files (typing/README.md, "pyright's negative protocol cache"), so this order shows a negative case cannot
turn a positive one red.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import time
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "typing"
ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
PYRIGHT = Path(sys.executable).parent / "pyright"
TOOL_TIMEOUT = 100.0  # seconds for both checkers, which run at once and take a few seconds each
PACKAGE = "cases"  # the temporary package the case files are copied into

MYPY_ONLY_HEADER = "# pyright: reportUnnecessaryTypeIgnoreComment=false"
# The pyright rule that reports what each mypy error code does. pyright honours ``# type: ignore[...]``
# whatever code it names, so the marker alone cannot show pyright saw *this* error rather than another
# one on the same line; the runner checks the rule. Add a pair when a case needs a new code.
PYRIGHT_RULES = {
    "arg-type": "reportArgumentType",
    "assignment": "reportAssignmentType",
    "attr-defined": "reportAttributeAccessIssue",
    "call-arg": "reportCallIssue",
    "override": "reportIncompatibleMethodOverride",
    "return-value": "reportReturnType",
}
_MARKER = re.compile(r"#\s*type:\s*ignore\[(?P<codes>[^\]]*)\](?P<rest>.*)$")
_ANY_IGNORE = re.compile(r"#\s*(type|pyright):\s*ignore")


@dataclass(frozen=True)
class Marker:
    """One marked negative line of a ``*_fail.py`` file."""

    line: int
    codes: frozenset[str]
    mypy_only: bool


@dataclass(frozen=True)
class Diagnostic:
    """One error a checker reported, reduced to what the comparison needs."""

    line: int
    code: str
    message: str


def _ignore_comments(source: str) -> list[tokenize.TokenInfo]:
    """The comments in ``source`` that mention ``# type: ignore`` or ``# pyright: ignore``."""
    return [
        token
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT and _ANY_IGNORE.search(token.string)
    ]


def parse_markers(source: str) -> dict[int, Marker]:
    """The markers in ``source``, by 1-based line; a malformed one raises ``ValueError``."""
    markers: dict[int, Marker] = {}
    for token in _ignore_comments(source):
        number = token.start[0]
        match = _MARKER.match(token.string)
        codes = frozenset(c.strip() for c in match["codes"].split(",") if c.strip()) if match else None
        if match is None or not codes:
            raise ValueError(
                f"line {number}: expected a comment starting '# type: ignore[<mypy code>]' (with a code; "
                f"no bare or pyright: ignore), got {token.string!r}"
            )
        markers[number] = Marker(number, codes, "# mypy-only:" in match["rest"])
    return markers


def strip_markers(source: str) -> str:
    """``source`` with every marker comment cut off (line numbers unchanged)."""
    lines = source.splitlines()
    for token in _ignore_comments(source):
        number, column = token.start
        lines[number - 1] = lines[number - 1][:column].rstrip()
    return "\n".join(lines) + "\n"


def problems(
    name: str,
    markers: Mapping[int, Marker],
    mypy: Iterable[Diagnostic],
    pyright: Iterable[Diagnostic],
    *,
    has_header: bool,
) -> list[str]:
    """Every way the checkers' reports for case file ``name`` differ from its markers (``[]``: none)."""
    found: list[str] = []
    mypy_by_line: dict[int, list[Diagnostic]] = {}
    for d in mypy:
        mypy_by_line.setdefault(d.line, []).append(d)
    pyright_by_line: dict[int, list[Diagnostic]] = {}
    for d in pyright:
        pyright_by_line.setdefault(d.line, []).append(d)

    for line, marker in sorted(markers.items()):
        reported = mypy_by_line.get(line, [])
        if not reported:
            found.append(f"{name}:{line}: mypy reports nothing on a marked line")
        elif not marker.codes & {d.code for d in reported}:
            codes = ", ".join(sorted({d.code for d in reported}))
            found.append(
                f"{name}:{line}: mypy reports [{codes}], the marker says [{', '.join(marker.codes)}]"
            )
        if marker.mypy_only and line in pyright_by_line:
            found.append(f"{name}:{line}: pyright now reports this mypy-only line; move it to a both-case")
        if not marker.mypy_only:
            rules = {d.code for d in pyright_by_line.get(line, [])}
            expected = {PYRIGHT_RULES[c] for c in marker.codes if c in PYRIGHT_RULES}
            if not expected:
                found.append(f"{name}:{line}: no pyright rule is known for [{', '.join(marker.codes)}]")
            elif not rules:
                found.append(f"{name}:{line}: pyright reports nothing on a marked line")
            elif not rules & expected:
                found.append(
                    f"{name}:{line}: pyright reports {sorted(rules)}, expected one of {sorted(expected)}"
                )
    for checker, by_line in (("mypy", mypy_by_line), ("pyright", pyright_by_line)):
        for line in sorted(set(by_line) - set(markers)):
            messages = "; ".join(d.message.splitlines()[0] for d in by_line[line])
            found.append(f"{name}:{line}: {checker} reports an unmarked line: {messages}")

    needs_header = any(m.mypy_only for m in markers.values())
    if needs_header and not has_header:
        found.append(f"{name}: has mypy-only lines but does not start with {MYPY_ONLY_HEADER!r}")
    if has_header and not needs_header:
        found.append(f"{name}: starts with {MYPY_ONLY_HEADER!r} but has no mypy-only line")
    return found


@dataclass(frozen=True)
class Run:
    """Both checkers' errors over the temporary copy, by case file name."""

    markers: dict[str, dict[int, Marker]]
    headers: dict[str, bool]
    mypy: dict[str, list[Diagnostic]]
    pyright: dict[str, list[Diagnostic]]


def _case_files() -> list[Path]:
    return sorted(CASES.glob("*.py"))


def _fail_files() -> list[Path]:
    return [p for p in _case_files() if p.name.endswith("_fail.py")]


def _communicate(proc: subprocess.Popen[str], what: str, deadline: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within {TOOL_TIMEOUT:.0f} s")  # the caller kills it


def _check(what: str, returncode: int, output: str) -> None:
    # Both exit 0 (clean) or 1 (errors reported); anything else is a crash or a configuration problem.
    if returncode not in (0, 1):
        pytest.fail(f"{what} exited with {returncode}: {output.strip()[-2000:]}")


def _key(file: str) -> str:
    """A case file's name; any other file (a source, a dependency) keeps its whole path."""
    path = Path(file)
    return path.name if path.parent.name == PACKAGE else file


def _mypy_diagnostics(stdout: str) -> dict[str, list[Diagnostic]]:
    out: dict[str, list[Diagnostic]] = {}
    for raw in stdout.splitlines():
        record = json.loads(raw) if raw.strip() else None
        if record is None or record["severity"] != "error":
            continue
        out.setdefault(_key(record["file"]), []).append(
            Diagnostic(record["line"], record["code"] or "", record["message"])
        )
    return out


def _pyright_diagnostics(stdout: str) -> dict[str, list[Diagnostic]]:
    out: dict[str, list[Diagnostic]] = {}
    for record in json.loads(stdout)["generalDiagnostics"]:
        if record["severity"] not in ("error", "warning"):
            continue
        line = record["range"]["start"]["line"] + 1  # pyright counts from 0
        out.setdefault(_key(record["file"]), []).append(
            Diagnostic(line, record.get("rule", ""), record["message"])
        )
    return out


CANARY = "canary_fail.py"
CANARY_SOURCE = '''"""Not a case: the runner writes it into its copy to show the comparison can fail."""

from __future__ import annotations

fine: int = 1  # type: ignore[assignment]
wrong: int = "x"
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Copy the cases (fail files stripped, plus a canary), run mypy and pyright once each, in parallel."""
    assert PYRIGHT.is_file(), f"pyright is not installed next to {sys.executable}"
    work = tmp_path_factory.mktemp("typing-cases")
    package = work / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    markers: dict[str, dict[int, Marker]] = {}
    headers: dict[str, bool] = {}
    for name, source in [*((p.name, p.read_text()) for p in _case_files()), (CANARY, CANARY_SOURCE)]:
        if name.endswith("_fail.py"):
            markers[name] = parse_markers(source)
            headers[name] = source.startswith(MYPY_ONLY_HEADER + "\n")
            source = strip_markers(source)
        (package / name).write_text(source)

    fail_first = sorted(markers) + sorted(p.name for p in _case_files() if p.name not in markers)
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}  # no npm version check
    # mypy reads the working tree's sources, as `make mypy` does (the config's mypy_path is relative to
    # the current directory, which is the copy's); pyright finds them through the venv's editable install.
    sources = os.pathsep.join(str(ROOT / part / "src") for part in ("spec", "reference", "conformance"))
    mypy_command = [sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT), "-O", "json", PACKAGE]
    pyright_command = [str(PYRIGHT), "--outputjson", "-p", str(PYPROJECT)]
    commands = {
        "mypy": (mypy_command, {**env, "MYPYPATH": sources}),
        "pyright": ([*pyright_command, *(f"{PACKAGE}/{name}" for name in fail_first)], env),
    }
    deadline = time.monotonic() + TOOL_TIMEOUT
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for what, (command, command_env) in commands.items():
            procs[what] = subprocess.Popen(
                command,
                cwd=work,
                env=command_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        outputs = {what: _communicate(proc, what, deadline) for what, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for what, (out, err) in outputs.items():
        _check(what, procs[what].returncode, err or out)
    mypy_out, pyright_out = outputs["mypy"][0], outputs["pyright"][0]
    return Run(markers, headers, _mypy_diagnostics(mypy_out), _pyright_diagnostics(pyright_out))


def test_the_suite_has_the_expected_shape() -> None:
    assert (CASES / "README.md").is_file()
    assert _fail_files() and len(_case_files()) > len(_fail_files())
    for path in _case_files():
        assert path.name.startswith("_") or path.name.endswith(("_pass.py", "_fail.py")), (
            f"{path.name}: a case file is named *_pass.py or *_fail.py (a helper starts with _)"
        )
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has no docstring"


@pytest.mark.parametrize("path", [p for p in _case_files() if p not in _fail_files()], ids=lambda p: p.name)
def test_pass_files_carry_no_markers(path: Path) -> None:
    assert _ignore_comments(path.read_text()) == [], f"{path.name}: a positive case must need no ignore"


@pytest.mark.parametrize("path", _fail_files(), ids=lambda p: p.name)
def test_fail_files_have_well_formed_markers(path: Path) -> None:
    assert parse_markers(path.read_text()), f"{path.name} has no marked negative line"


@pytest.mark.parametrize("path", _fail_files(), ids=lambda p: p.name)
def test_each_marker_is_load_bearing(run: Run, path: Path) -> None:
    name = path.name
    assert (
        problems(
            name,
            run.markers[name],
            run.mypy.get(name, []),
            run.pyright.get(name, []),
            has_header=run.headers[name],
        )
        == []
    )


@pytest.mark.parametrize("path", [p for p in _case_files() if p not in _fail_files()], ids=lambda p: p.name)
def test_pass_files_are_clean(run: Run, path: Path) -> None:
    # Checked after every fail file by pyright, so a negative case cannot have poisoned these.
    assert run.mypy.get(path.name, []) == []
    assert run.pyright.get(path.name, []) == []


def test_nothing_outside_the_cases_is_reported(run: Run) -> None:
    names = {p.name for p in _case_files()} | {CANARY}
    assert set(run.mypy) <= names, run.mypy
    assert set(run.pyright) <= names, run.pyright


def test_the_comparison_catches_a_needless_marker_and_an_unmarked_error(run: Run) -> None:
    found = problems(
        CANARY,
        run.markers[CANARY],
        run.mypy.get(CANARY, []),
        run.pyright.get(CANARY, []),
        has_header=run.headers[CANARY],
    )
    expected = [
        f"{CANARY}:5: mypy reports nothing on a marked line",
        f"{CANARY}:5: pyright reports nothing on a marked line",
        f"{CANARY}:6: mypy reports an unmarked line: Incompatible types in assignment",
        f"{CANARY}:6: pyright reports an unmarked line: ",
    ]
    assert len(found) == len(expected), found
    assert all(f.startswith(e) for f, e in zip(found, expected, strict=True)), found


def test_parse_and_strip_markers() -> None:
    source = (
        "a: int = 'x'  # type: ignore[assignment]  # why\n"
        "b = 1  # type: ignore[misc, type-abstract]  # mypy-only: reason\n"
        "c = 2\n"
    )
    assert parse_markers(source) == {
        1: Marker(1, frozenset({"assignment"}), mypy_only=False),
        2: Marker(2, frozenset({"misc", "type-abstract"}), mypy_only=True),
    }
    assert strip_markers(source) == "a: int = 'x'\nb = 1\nc = 2\n"
    for bad in (
        "x = 1  # type: ignore\n",
        "x = 1  # type: ignore[]\n",
        "x = 1  # pyright: ignore[reportX]\n",
    ):
        with pytest.raises(ValueError, match="line 1: expected a comment starting"):
            parse_markers(bad)


def test_mismatched_codes_and_headers_are_reported() -> None:
    both = {
        3: Marker(3, frozenset({"assignment"}), mypy_only=False),
        4: Marker(4, frozenset({"no-untyped-def"}), mypy_only=False),
    }
    found = problems(
        "w_fail.py",
        both,
        [Diagnostic(3, "assignment", "m"), Diagnostic(4, "no-untyped-def", "m")],
        [Diagnostic(3, "reportUnusedVariable", "p"), Diagnostic(4, "reportMissingParameterType", "p")],
        has_header=False,
    )
    assert found == [
        "w_fail.py:3: pyright reports ['reportUnusedVariable'], expected one of ['reportAssignmentType']",
        "w_fail.py:4: no pyright rule is known for [no-untyped-def]",
    ]
    marker = {3: Marker(3, frozenset({"assignment"}), mypy_only=True)}
    found = problems(
        "x_fail.py",
        marker,
        [Diagnostic(3, "arg-type", "m")],
        [Diagnostic(3, "reportArgumentType", "p")],
        has_header=False,
    )
    assert found == [
        "x_fail.py:3: mypy reports [arg-type], the marker says [assignment]",
        "x_fail.py:3: pyright now reports this mypy-only line; move it to a both-case",
        f"x_fail.py: has mypy-only lines but does not start with {MYPY_ONLY_HEADER!r}",
    ]
    assert problems("y_fail.py", {}, [], [], has_header=True) == [
        f"y_fail.py: starts with {MYPY_ONLY_HEADER!r} but has no mypy-only line"
    ]
