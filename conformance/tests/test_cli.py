"""The ``lmstream`` command: exit statuses 0/1/2, one-line errors, text/JSON/JUnit reports, -k."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lmstream.conformance import SUITE_VERSION, checks_for, spec_url
from lmstream.conformance.cli import main
from lmstream.conformance.model import TargetKind
from lmstream.spec import SPEC_VERSION

N_ENGINE = len(checks_for(TargetKind.ENGINE))

_TARGETS = """
import asyncio
from lmstream.reference import ChatMessage, Completion

def done(text):
    return Completion(ChatMessage("assistant", text), 1, 2)

async def _items(*items):
    for item in items:
        await asyncio.sleep(0)
        yield item

class Good:
    def stream(self, messages, functions=None, **hyperparams):
        return _items("Hel", "lo", done("Hello"))

class YieldsBytes:
    def stream(self, messages, functions=None, **hyperparams):
        return _items("Hel", b"lo", done("Hel"))

class TextMismatch:
    def stream(self, messages, functions=None, **hyperparams):
        return _items("Hel", "lo", done("Hello!"))

PROMPT = [ChatMessage("user", "a b c")]

def make_prompt():
    return [ChatMessage("user", "one two")]
NOT_A_PROMPT = 7
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding ``cli_targets.py``, made the current directory (as a user runs the command)."""
    (tmp_path / "cli_targets.py").write_text(textwrap.dedent(_TARGETS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts the current directory on it
    monkeypatch.delitem(sys.modules, "cli_targets", raising=False)
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.usefixtures("workdir")
def test_a_conforming_engine_exits_0_with_a_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "check", "engine", "cli_targets:Good")
    assert status == 0 and not err
    lines = out.splitlines()
    assert (
        lines[0]
        == f"lmstream conformance suite {SUITE_VERSION} (spec {SPEC_VERSION}): engine cli_targets:Good"
    )
    assert lines[1].split() == ["ES-1", "MUST", "passed", "returns_async_iterable"]
    assert lines[-1] == f"{N_ENGINE} passed, 0 failed, 0 skipped"


@pytest.mark.usefixtures("workdir")
def test_a_failed_must_exits_1_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "check", "engine", "cli_targets:YieldsBytes")
    assert status == 1
    assert f"{N_ENGINE - 1} passed, 1 failed, 0 skipped" == out.splitlines()[-1]
    assert "ES-2   MUST       failed  items_are_tokens_or_completions" in out
    assert "    observed: item 2 of 3: yielded bytes b'lo'" in out
    assert f"    spec: {spec_url('ES-2')}" in out  # the local page (test_links.py), by default
    assert "    reproduction:\n        import asyncio\n        from cli_targets import YieldsBytes" in out


@pytest.mark.usefixtures("workdir")
def test_a_failed_should_exits_1_only_under_strict(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "check", "engine", "cli_targets:TextMismatch")
    assert status == 0 and "[SHOULD not met: fails the run only with --strict]" in out
    status, out, _ = _run(capsys, "check", "engine", "cli_targets:TextMismatch", "--strict")
    assert status == 1 and "not met" not in out


@pytest.mark.usefixtures("workdir")
def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "check", "engine", "cli_targets:YieldsBytes", "--format", "json")
    data = json.loads(out)
    assert status == 1
    assert {k: data[k] for k in ("kind", "target", "passed", "failed", "skipped")} == {
        "kind": "engine",
        "target": "cli_targets:YieldsBytes",
        "passed": N_ENGINE - 1,
        "failed": 1,
        "skipped": 0,
    }
    assert (data["spec_version"], data["suite_version"]) == (SPEC_VERSION, SUITE_VERSION)
    (failed,) = [r for r in data["results"] if r["outcome"] == "failed"]
    assert (failed["id"], failed["level"], failed["check"]) == (
        "ES-2",
        "MUST",
        "items_are_tokens_or_completions",
    )
    assert "bytes b'lo'" in failed["message"] and "from cli_targets import" in failed["reproduction"]
    assert all(set(r) >= {"id", "level", "check", "outcome", "message"} for r in data["results"])


def test_junit_xml(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "out" / "report.xml"
    path.parent.mkdir()
    status, _, _ = _run(capsys, "check", "engine", "cli_targets:TextMismatch", "--junit-xml", str(path))
    assert status == 0
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["spec_version"] == SPEC_VERSION and properties["suite_version"] == SUITE_VERSION
    assert properties["kind"] == "engine" and properties["target"] == "cli_targets:TextMismatch"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == N_ENGINE and "test_ES_9_completion_text_is_token_text" in cases
    assert suite.get("failures") == "0" and suite.get("skipped") == "1"  # the SHOULD, not strict
    assert cases["test_ES_9_completion_text_is_token_text"].find("skipped") is not None
    _run(capsys, "check", "engine", "cli_targets:TextMismatch", "--junit-xml", str(path), "--strict")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"


@pytest.mark.usefixtures("workdir")
def test_k_selects_checks(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "check", "engine", "cli_targets:YieldsBytes", "-k", "ES-1 or ES-3")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["ES-1", "ES-3"]
    status, out, _ = _run(capsys, "check", "engine", "cli_targets:Good", "-k", "not MUST")
    ids = [line.split()[0] for line in out.splitlines()[1:-1] if not line.startswith(" ")]
    assert ids == ["ES-9", "ES-10", "ES-11"]


@pytest.mark.usefixtures("workdir")
def test_messages_option(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(
        capsys, "check", "engine", "lmstream.conformance.examples:EchoEngine", "-k", "ES-11"
    )
    assert status == 0 and "7 token(s)" in out
    status, out, _ = _run(
        capsys,
        "check",
        "engine",
        "lmstream.conformance.examples:EchoEngine",
        "-k",
        "ES-11",
        "--messages",
        "cli_targets:PROMPT",
    )
    assert status == 0 and "3 token(s)" in out
    status, out, _ = _run(
        capsys,
        "check",
        "engine",
        "cli_targets:YieldsBytes",
        "-k",
        "ES-2",
        "--messages",
        "cli_targets:make_prompt",
    )
    assert status == 1
    assert "from cli_targets import make_prompt" in out and "engine.stream(list(make_prompt()))" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["check", "engine", "nosuchmodule:x"],
            "lmstream: cannot import 'nosuchmodule': No module named 'nosuchmodule'",
        ),
        (["check", "engine", "os:nosuchattr"], "lmstream: module 'os' has no attribute 'nosuchattr'"),
        (["check", "engine", "builtins:int"], "lmstream: 'builtins:int' is the class int, which has neither"),
        (
            ["check", "engine", "cli_targets:Good", "--timeout", "-1"],
            "lmstream: argument --timeout: the timeout must be",
        ),
        (
            ["check", "engine", "cli_targets:Good", "--timeout", "soon"],
            "must be a number of seconds, got 'soon'",
        ),
        (
            ["check", "engine", "cli_targets:Good", "-k", "ES-3 and"],
            "lmstream: -k 'ES-3 and': unexpected end",
        ),
        (["check", "engine", "cli_targets:Good", "-k", "nothing"], "lmstream: -k 'nothing' selects none"),
        (
            ["check", "engine", "cli_targets:Good", "--junit-xml", "/nonexistent/dir/r.xml"],
            "cannot write --junit-xml",
        ),
        (
            ["check", "engine", "cli_targets:Good", "--messages", "cli_targets:NOT_A_PROMPT"],
            "expected a sequence",
        ),
        (["check", "robot", "cli_targets:Good"], "lmstream: argument kind: invalid choice: 'robot'"),
        (["check", "manager", "cli_targets:Good"], "lmstream: "),
        (["check"], "lmstream: the following arguments are required"),
    ],
)
@pytest.mark.usefixtures("workdir")
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = _run(capsys, *argv)
    assert status == 2 and not out
    assert err.count("\n") == 1 and err.startswith("lmstream: ") and message in err, err


def test_a_module_with_a_syntax_error_exits_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "cli_bad_syntax.py").write_text("class (:\n")
    status, _, err = _run(capsys, "check", "engine", "cli_bad_syntax:Engine")
    assert status == 2 and err.startswith("lmstream: cannot import 'cli_bad_syntax': SyntaxError:")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "lmstream.conformance"], [str(Path(sys.executable).parent / "lmstream")]],
)
def test_the_command_runs_as_a_module_and_as_a_script(workdir: Path, command: list[str]) -> None:
    ok = subprocess.run(
        [*command, "check", "engine", "cli_targets:Good"], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == f"{N_ENGINE} passed, 0 failed, 0 skipped"
    bad = subprocess.run(
        [*command, "check", "engine", "cli_targets:Nope"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert (
        bad.stderr
        == "lmstream: module 'cli_targets' has no attribute 'Nope' (looking up 'cli_targets:Nope')\n"
    )


def test_a_status_2_exit_writes_no_junit_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = workdir / "report.xml"
    assert main(["check", "engine", "nosuchmodule:X", "--junit-xml", str(target)]) == 2
    assert not target.exists()
    assert main(["check", "engine", "cli_targets:Good", "--junit-xml", str(workdir / "no" / "r.xml")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"no directory {str(workdir / 'no')!r}")


_ES8 = ("--timeout", "0.3", "-k", "ES-8")


def test_a_thread_the_target_leaves_blocked_does_not_hold_the_command(workdir: Path) -> None:
    # The engine blocks a thread of the default executor for 60 s: the check fails (ES-8), the report says
    # the executor's thread was still busy (the suite's thread, running the target's call: not a thread
    # the target started), and the command ends at once: the worker process exits without waiting for it
    # (the subprocess timeout is the bound).
    (workdir / "blocking_targets.py").write_text(
        textwrap.dedent(
            """
            import asyncio, time

            class Engine:
                def stream(self, messages, functions=None, **hyperparams):
                    return self._items()

                async def _items(self):
                    await asyncio.get_running_loop().run_in_executor(None, time.sleep, 60)
                    yield "never"
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "lmstream.conformance", "check", "engine", "blocking_targets:Engine", *_ES8],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1, done.stderr
    assert "a thread of the check's default executor, running the target's run_in_executor()" in done.stdout
    assert "lmstream check executor" not in done.stdout + done.stderr
    assert done.stderr == ""
