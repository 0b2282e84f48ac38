"""The typing-cases directive: marked lines read from real comments, their descriptions, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from docs._ext.typingcases import read_cases, summary
from docs.tests._sphinx import Build, build

CASES = Path(__file__).resolve().parents[2] / "spec" / "tests" / "typing"
MYPY_ONLY_HEADER = "# pyright: reportUnnecessaryTypeIgnoreComment=false"

SOURCE = '''\
"""Negative cases: a sample.

Each line carries ``# type: ignore[assignment]``: this docstring's mention is not a marker.
"""

# An unrelated comment, separated from the case by code.
x = 1

# ES-2: a stream yielding ``bytes``.
# (The second line of the introduction.)
class BytesEngine: ...


bytes_engine: Engine = BytesEngine()  # type: ignore[assignment]  # yields bytes
again: Engine = BytesEngine()  # type: ignore[assignment, arg-type]  # needs **hyperparams
text = "# type: ignore[assignment]  # inside a string"


def f() -> None:
    # Only mypy sees this one.
    run(Manager)  # type: ignore[arg-type]  # mypy-only: solves C as Never
'''


def test_marked_lines_with_their_introduction_and_reason() -> None:
    cases = read_cases(SOURCE)
    assert [case.line for case in cases] == [14, 15, 21]
    first, second, third = cases
    assert first.statement == "bytes_engine: Engine = BytesEngine()"
    assert first.mypy_codes == ("assignment",)
    assert first.why == "yields bytes"
    assert first.description == "ES-2: a stream yielding ``bytes``. (The second line of the introduction.)"
    assert not first.mypy_only
    # Consecutive cases: the introduction belongs to the first only; codes are split.
    assert (second.description, second.mypy_codes) == ("", ("assignment", "arg-type"))
    assert second.why == "needs **hyperparams"
    assert third.statement == "run(Manager)"
    assert (third.description, third.why, third.mypy_only) == (
        "Only mypy sees this one.",
        "solves C as Never",
        True,
    )


def test_summary_is_the_docstrings_first_paragraph() -> None:
    assert summary(SOURCE) == "Negative cases: a sample."
    assert summary("x = 1\n") == ""


@pytest.mark.parametrize("path", sorted(CASES.glob("*_fail.py")), ids=lambda path: path.name)
def test_every_real_case_file_has_cases_and_mypy_only_matches_its_header(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    cases = read_cases(source)
    assert cases, f"{path.name}: no marked line found"
    assert summary(source)
    header = source.splitlines()[0] == MYPY_ONLY_HEADER
    assert {case.mypy_only for case in cases} == {header}
    for case in cases:
        assert case.statement and case.mypy_codes and (case.description or case.why)


CONF = 'extensions = ["docs._ext.requirements", "docs._ext.typingcases"]\nnitpicky = True\n'


def _project(tmp_path: Path, body: str, files: dict[str, str]) -> Build:
    src = tmp_path / "src"
    (src / "cases").mkdir(parents=True)
    (src / "conf.py").write_text(CONF)
    (src / "index.rst").write_text(f"Spec\n====\n\n.. lmstream-requirements::\n\n{body}")
    for name, text in files.items():
        (src / "cases" / name).write_text(text)
    return build(src, tmp_path / "out")


def test_one_table_per_file_with_linked_requirements(tmp_path: Path) -> None:
    result = _project(tmp_path, ".. lmstream-typing-cases:: cases\n", {"sample_fail.py": SOURCE})
    assert result.warnings == ""
    html = (result.outdir / "index.html").read_text()
    assert '<code class="docutils literal notranslate"><span class="pre">sample_fail.py</span>' in html
    assert html.count('class="lmstream-typing-cases') == 1
    assert 'href="#es-2"' in html  # the requirement ID in the introduction links to the spec
    assert "mypy only" in html and "yields bytes" in html
    assert "needs **hyperparams" in html  # the note after a marker is shown as written, not parsed


@pytest.mark.parametrize(
    ("directive", "files", "message"),
    [
        (".. lmstream-typing-cases:: nowhere\n", {}, "'nowhere' is not a directory of typing cases"),
        (
            ".. lmstream-typing-cases:: cases\n   :files: absent_fail\n",
            {"sample_fail.py": SOURCE},
            "no such case file in 'cases': absent_fail.py",
        ),
        (".. lmstream-typing-cases:: cases\n", {"empty_fail.py": '"""Nothing."""\n'}, "empty_fail.py has no"),
    ],
)
def test_mistakes_are_errors_at_the_directive(
    tmp_path: Path, directive: str, files: dict[str, str], message: str
) -> None:
    result = _project(tmp_path, directive, files)
    assert "index.rst" in result.warnings and message in result.warnings
