"""``lmstream check`` survives any target: every hostile case of ``_hostile.py`` ends within its bound, with
the expected exit status, no traceback, a JSON report and a JUnit file that parse, and the cause named on
the failed check.

Most cases run the command's ``main()`` in this process (the checks run in a worker process all the same);
those about the process itself (Ctrl-C, the console script) run it as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lmstream.conformance import default_grace
from lmstream.conformance._supervisor import hard_deadline
from lmstream.conformance.cli import main

from ._hostile import IMPORTS

T = 0.2
"""Seconds per check."""
HARD = hard_deadline(T, default_grace(T))
RESTART = 0.5
"""A generous bound on starting a fresh worker (a fork, and the target's import again)."""
SLACK = 3.0
"""The command's own start and end, on a loaded machine."""
MODULE = "conformance.tests._hostile"
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX signals and file descriptors")


@dataclass(frozen=True)
class Case:
    """One hostile target: how to run it and what the report must say."""

    target: str
    select: str = "ES-1 or ES-2 or ES-3"
    kind: str = "engine"
    status: int = 1
    failed: frozenset[str] = frozenset({"ES-2", "ES-3"})
    cause: str = ""
    """A piece of every failed check's message."""
    passed: frozenset[str] = frozenset({"ES-1"})
    stdout: str = ""
    """A piece of some check's captured stdout."""
    stderr: str = ""
    checks: int = 3
    extra: tuple[str, ...] = field(default=())


BLOCKED = "without returning to the event loop"
STOPPED = "the suite stopped the process at the check's hard deadline"

HANGS = [
    Case("ComputesInC", cause="held the interpreter without a break (a long computation in C code?)"),
    Case("BusyCatchingEverything", cause=f"{BLOCKED}, at "),
    Case("CancelsTheAlarm", cause=f"{BLOCKED}, at conformance/tests/_hostile.py"),
    Case("StopsTheTimer", cause=STOPPED),
    Case("TakesOverSigalrm", cause=STOPPED),
    Case("BlocksSigalrm", cause=STOPPED),
    Case("DelBlocks", cause="in __del__"),
    Case("Deadlocks", cause="in misbehave"),
    # Its completion() swallows even the GeneratorExit of the garbage collector, then loops for ever
    # (asyncio.sleep() raises outside the loop, and that is swallowed too): at the end of every check.
    Case(
        "UncancellableManager",
        kind="manager",
        select="SM-5 or role_is_the_construction_role",
        failed=frozenset({"SM-5", "SM-16"}),
        passed=frozenset(),
        cause="outside the event loop, at ",
        checks=2,
    ),
]

CRASHES = [
    Case(
        "RaisesKeyboardInterrupt",
        failed=frozenset({"ES-1", "ES-2", "ES-3"}),
        passed=frozenset(),
        cause="the target raised KeyboardInterrupt() raised at conformance/tests/_hostile.py",
    ),
    Case("IteratorRaisesKeyboardInterrupt", cause="KeyboardInterrupt('from the engine') raised at"),
    Case("IteratorRaisesSystemExit", cause="SystemExit('from the engine') raised at"),
    Case("IteratorRaisesGeneratorExit", cause="GeneratorExit('from the engine') raised at"),
    Case("IteratorRaisesBaseException", cause="_Custom('from the engine') raised at"),
    Case(
        "AcloseRaisesKeyboardInterrupt",
        select="ES-1 or ES-5",
        failed=frozenset({"ES-5"}),
        cause="KeyboardInterrupt",
        checks=2,
    ),
    Case("StopsTheLoop", cause="stopped the suite's event loop (loop.stop())"),
    Case(
        "ClosesTheLoop",
        select="ES-1 or ES-8",
        failed=frozenset({"ES-8"}),
        cause="RuntimeError('Cannot close a running event loop')",
        checks=2,
    ),
    Case("CancelsEveryTask", cause="cancel"),
    Case("ExitsTheProcess", cause="ended the worker process with os._exit(3)"),
    Case("Segfaults", cause="crashed with SIGSEGV", stderr="Fatal Python error: Segmentation fault"),
    Case("KillsItself", cause="killed by SIGKILL, not by the suite"),
    Case("InterruptsItself", cause="KeyboardInterrupt"),
    Case("ClosesEveryDescriptor", cause="closed the suite's channel to the worker process"),
    Case("Floods", cause="the target wrote more than 16 MiB to stdout; the suite stopped the process"),
]

POLLUTION = [
    Case(
        "Prints",
        status=0,
        failed=frozenset(),
        passed=frozenset({"ES-1", "ES-2", "ES-3"}),
        stdout="hello from the engine",
        stderr="to stderr too",
    ),
    Case(
        "WritesFd1",
        status=0,
        failed=frozenset(),
        passed=frozenset({"ES-1", "ES-2", "ES-3"}),
        stdout="written to fd 1",
        stderr="written to fd 2",
    ),
    Case(
        "PrintsFromAThread",
        status=0,
        failed=frozenset(),
        passed=frozenset({"ES-1", "ES-2", "ES-3"}),
        stdout="hello from a thread",
    ),
    Case(
        "PrintsFromAChildProcess",
        status=0,
        failed=frozenset(),
        passed=frozenset({"ES-1", "ES-2", "ES-3"}),
        stdout="hello from a child process",
    ),
    Case("ReplacesStdout", status=0, failed=frozenset(), passed=frozenset({"ES-1", "ES-2", "ES-3"})),
    Case("ClosesFd1", status=0, failed=frozenset(), passed=frozenset({"ES-1", "ES-2", "ES-3"})),
    Case(
        "WritesGarbage",
        status=0,
        failed=frozenset(),
        passed=frozenset({"ES-1", "ES-2", "ES-3"}),
        stdout="not utf-8",
        stderr="a lone surrogate",
    ),
    Case(
        "WritesALot",
        status=0,
        failed=frozenset(),
        passed=frozenset({"ES-1", "ES-2", "ES-3"}),
        stdout="bytes left out",
    ),
    Case("SilencesTheSuite", status=0, failed=frozenset(), passed=frozenset({"ES-1", "ES-2", "ES-3"})),
    Case(
        "Logs",
        status=0,
        failed=frozenset(),
        passed=frozenset({"ES-1", "ES-2", "ES-3"}),
        stdout="engine log line",
    ),
]


def _bound(case: Case) -> float:
    return case.checks * (HARD + RESTART) + SLACK


def _run_main(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, *argv: str
) -> tuple[int, str, str, float, Path]:
    junit = tmp_path / "report.xml"
    started = time.monotonic()
    status = main([*argv, "--format", "json", "--junit-xml", str(junit)])
    elapsed = time.monotonic() - started
    out, err = capfd.readouterr()
    return status, out, err, elapsed, junit


def _junit_cases(path: Path) -> dict[str, ET.Element]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return {str(c.get("name")): c for c in suite.iter("testcase")}


@POSIX
@pytest.mark.parametrize("case", HANGS + CRASHES + POLLUTION, ids=lambda c: c.target)
def test_a_hostile_target_gets_a_whole_report(
    case: Case, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err, elapsed, junit = _run_main(
        capfd,
        tmp_path,
        "check",
        case.kind,
        f"{MODULE}:{case.target}",
        "--timeout",
        str(T),
        "-k",
        case.select,
        *case.extra,
    )
    assert elapsed < _bound(case), elapsed
    assert status == case.status, out
    assert err == "" and "Traceback" not in out
    data: dict[str, Any] = json.loads(out)
    results = {r["id"]: r for r in data["results"]}
    assert len(data["results"]) == case.checks
    assert {i for i, r in results.items() if r["outcome"] == "failed"} == case.failed, out
    assert {i for i, r in results.items() if r["outcome"] == "passed"} >= case.passed, out
    for rid in case.failed:
        assert case.cause in results[rid]["message"], results[rid]["message"]
    if case.stdout:
        assert any(case.stdout in r["stdout"] for r in data["results"]), out
    if case.stderr:
        assert any(case.stderr in r["stderr"] for r in data["results"]), out
    cases = _junit_cases(junit)
    assert len(cases) == case.checks
    failures = {name for name, c in cases.items() if c.find("failure") is not None}
    assert len(failures) == len(case.failed)
    if case.stdout:
        assert any(case.stdout in (c.findtext("system-out") or "") for c in cases.values())


@POSIX
def test_the_text_report_shows_the_output_as_a_bounded_note(
    capfd: pytest.CaptureFixture[str],
) -> None:
    status = main(["check", "engine", f"{MODULE}:WritesGarbage", "--timeout", str(T), "-k", "ES-2"])
    out, err = capfd.readouterr()
    assert status == 0 and err == ""
    assert "    note: the target wrote" in out and "to stdout during the check:" in out
    assert "\x1b" not in out and "\x00" not in out and "\\x1b[2J" in out  # escaped, cannot drive a terminal
    status = main(["check", "engine", f"{MODULE}:WritesALot", "--timeout", str(T), "-k", "ES-2"])
    out, _ = capfd.readouterr()
    assert status == 0 and len(out) < 5000, len(out)


# ---------------------------------------------------------------------------------------------- imports
@pytest.fixture
def hostile_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding the hostile import modules, made the current directory."""
    for name, source in IMPORTS.items():
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


IMPORT_TIMEOUT = 1.0


@POSIX
@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("import_sleeps", "importing 'import_sleeps:Engine' did not finish within 1.0 s"),
        ("import_loops", "importing 'import_loops:Engine' did not finish within 1.0 s"),
        ("import_computes", "held the interpreter without a break"),
        ("import_raises_keyboard_interrupt", "importing 'import_raises_keyboard_interrupt' raised"),
        ("import_raises_base_exception", "raised Custom('at import')"),
        ("import_exits", "ended the worker process with os._exit(4)"),
        ("import_runs_the_suite", "lmstream checks cannot run inside a worker process of the suite"),
        (
            "conformance.tests._hostile",
            "reading conformance.tests._hostile:Namespace.engine raised KeyboardInterrupt",
        ),
    ],
)
@pytest.mark.usefixtures("hostile_dir")
def test_a_target_whose_import_misbehaves_is_unusable(
    module: str, message: str, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = f"{module}:Namespace.engine" if module == MODULE else f"{module}:Engine"
    status, out, err, elapsed, junit = _run_main(
        capfd, tmp_path, "check", "engine", target, "--import-timeout", str(IMPORT_TIMEOUT)
    )
    assert elapsed < IMPORT_TIMEOUT + RESTART + SLACK, elapsed
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("lmstream: ") and message in err, err
    error = json.loads(out)
    assert error["status"] == 2 and message in error["error"]
    assert not junit.exists()


@POSIX
@pytest.mark.usefixtures("hostile_dir")
def test_what_a_target_writes_while_imported_is_the_reports(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err, _, junit = _run_main(capfd, tmp_path, "check", "engine", "import_prints:Engine")
    assert status == 0 and err == ""
    data = json.loads(out)
    assert data["stdout"] == "hello at import\n" and data["stderr"] == "fd 2 at import\n"
    assert all(r["stdout"] == "" for r in data["results"])
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.findtext("system-out") == "hello at import\n"
    # logging.basicConfig() in the command's own process (here pytest's root logger has handlers already).
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmstream.conformance",
            "check",
            "engine",
            "import_logs:Engine",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout)["stdout"] == "INFO:engine:configured\n"


# ------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout", "1e20"], "the timeout must be a positive, finite number of seconds from 0.01 to 3600"),
        (["--timeout", "inf"], "got 'inf'"),
        (["--timeout", "nan"], "got 'nan'"),
        (["--import-timeout", "0"], "got '0'"),
        (["-k", "(" * 3000 + "ES-1" + ")" * 3000], "more than the 1000 allowed"),
        (["-k", "(" * 40 + "ES-1" + ")" * 40], "nest more than 32 deep"),
        (["-k", "not " * 40 + "ES-1"], "nest more than 32 deep"),
    ],
)
def test_options_are_validated_up_front(
    argv: list[str], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    status = main(["check", "engine", "lmstream.conformance.examples:EchoEngine", *argv, "--format", "json"])
    out, err = capfd.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and message in err, err
    assert message in json.loads(out)["error"]


def test_a_json_error_object_even_when_the_command_line_does_not_parse(
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "robot", "x:y", "--format=json"]) == 2
    out, err = capfd.readouterr()
    assert err.startswith("lmstream: argument kind: invalid choice") and err.count("\n") == 1
    assert json.loads(out)["status"] == 2


# ------------------------------------------------------------------------------------ the whole command
_BLOCKS_LATER = """
import os, time
from lmstream.reference import ChatMessage, Completion

class Engine:
    def stream(self, messages, functions=None, **hyperparams):
        return self._items()

    async def _items(self):
        yield "Hel"
        os.write(int(os.environ["HOSTILE_FD"]), f"{os.getpid()}\\n".encode())
        time.sleep(3600)
        yield Completion(ChatMessage("assistant", "Hel"), 1, 2)
"""


@POSIX
async def test_ctrl_c_stops_the_run_at_once_with_the_partial_report(
    hostile_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The terminal's SIGINT goes to the command's process group: the command stops, prints the checks
    that ended (ES-1), exits 1 with one line on stderr, and its worker is gone."""
    (hostile_dir / "blocks_later.py").write_text(textwrap.dedent(_BLOCKS_LATER))
    read_end, write_end = os.pipe()  # the target tells the test, through it, that it is blocking
    monkeypatch.setenv("HOSTILE_FD", str(write_end))
    loop = asyncio.get_running_loop()
    blocking = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(blocking), os.fdopen(read_end, "rb")
    )
    command = [sys.executable, "-m", "lmstream.conformance", "check", "engine", "blocks_later:Engine"]
    process = await asyncio.create_subprocess_exec(
        *command,
        *("--timeout", "60", "-k", "ES-1 or ES-2", "--format", "json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        pass_fds=(write_end,),
        start_new_session=True,  # a process group of its own, as a shell gives a foreground job
    )
    os.close(write_end)
    try:
        worker = int(await asyncio.wait_for(blocking.readline(), 30))
        interrupted = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 10)
        assert time.monotonic() - interrupted < 3.0
    finally:
        transport.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 1, err
    assert err.decode().splitlines() == [
        "lmstream: interrupted: the report covers the 1 of 2 check(s) that ended before"
    ]
    data = json.loads(out)
    assert data["interrupted"] is True and [r["id"] for r in data["results"]] == ["ES-1"]
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)


@POSIX
def test_a_command_started_with_stdout_closed_still_writes_its_junit_file(tmp_path: Path) -> None:
    """With fd 1 closed, the worker's pipe could take fd 1 and be redirected away: it must not."""
    junit = tmp_path / "report.xml"
    command = [sys.executable, "-m", "lmstream.conformance", "check", "engine", f"{MODULE}:Prints"]
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" >&-', *command, "-k", "ES-2", "--junit-xml", str(junit)],
        capture_output=False,
        stderr=subprocess.PIPE,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0 and done.stderr == b""
    (case,) = ET.parse(junit).getroot().iter("testcase")
    assert case.findtext("system-out") == "hello from the engine\n"


@POSIX
def test_the_console_script_reports_a_target_that_exits(hostile_dir: Path) -> None:
    script = Path(sys.executable).parent / "lmstream"
    done = subprocess.run(
        [str(script), "check", "engine", f"{MODULE}:ExitsTheProcess", "--timeout", str(T), "-k", "ES-2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 1 and done.stderr == ""
    assert "ended the worker process with os._exit(3)" in done.stdout
    assert done.stdout.splitlines()[-1] == "0 passed, 1 failed, 0 skipped"
    _ = hostile_dir
