"""The worker machinery: how the worker gets the target (fork, spawn, in-process), the channel, the output
files, what a worker's end says; and that a spawned worker keeps every bound a forked one does."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from lmstream.conformance import Outcome, TargetError, TargetKind, run_check, run_checks
from lmstream.conformance._channel import CLOSED, Receiver, Sender
from lmstream.conformance._launch import describe_end, import_name, start_method
from lmstream.conformance._output import OUTPUT_LIMIT, OutputFiles
from lmstream.conformance._worker import Job
from lmstream.conformance.checks import get_check
from lmstream.conformance.examples import EchoEngine

from ._engines import Good

T = 0.2
HOSTILE = "conformance.tests._hostile"


def _job(target: object, **changes: Any) -> Job:
    return Job(
        kind=TargetKind.ENGINE,
        target=target,
        target_name=None,
        checks=(get_check(TargetKind.ENGINE, "returns_async_iterable"),),
        indices=(0,),
        timeout=T,
        grace=0.05,
        report_after=1.0,
        import_report_after=1.0,
        messages=changes.pop("messages", None),
        stdout_path="",
        stderr_path="",
        token="t",
    )


@pytest.fixture
def a_thread() -> Iterator[None]:
    """Another thread runs in this process while the test does."""
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="a thread of the caller's")
    thread.start()
    try:
        yield
    finally:
        release.set()
        thread.join()


# ------------------------------------------------------------------------------------- how, and names
def test_a_single_threaded_posix_caller_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMSTREAM_WORKER", raising=False)
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    assert start_method(_job("lmstream.conformance.examples:EchoEngine")) == ("fork", None)
    assert start_method(_job(lambda: EchoEngine())) == ("fork", None)


@pytest.mark.usefixtures("a_thread")
def test_a_caller_with_threads_spawns_by_name_and_forks_only_an_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LMSTREAM_WORKER", raising=False)
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    name = "lmstream.conformance.examples:EchoEngine"
    assert start_method(_job(name)) == ("spawn", name)
    assert start_method(_job(EchoEngine)) == ("spawn", name)
    assert start_method(_job(lambda: EchoEngine())) == ("fork", None)
    assert start_method(_job(EchoEngine, messages=[lambda: None])) == ("fork", None)  # cannot be pickled


def test_import_names() -> None:
    class Local:
        pass

    assert import_name("pkg:Name") == "pkg:Name"
    assert import_name(EchoEngine) == "lmstream.conformance.examples:EchoEngine"
    assert import_name(Good) == "conformance.tests._engines:Good"
    assert import_name(EchoEngine.stream) == "lmstream.conformance.examples:EchoEngine.stream"
    assert import_name(EchoEngine()) is None  # an instance has no name
    assert import_name(Local) is None and import_name(lambda: None) is None


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (3, "ended the worker process with os._exit(3)"),
        (-9, "killed by SIGKILL, not by the suite"),
        (-11, "crashed with SIGSEGV"),
        (-6, "crashed with SIGABRT"),
        (-14, "killed by SIGALRM"),
        (None, "closed the suite's channel"),
    ],
)
def test_what_a_workers_end_says(status: int | None, text: str) -> None:
    assert text in describe_end(status)


# ------------------------------------------------------------------------------------------- spawned
@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSTREAM_WORKER", "spawn")


@pytest.mark.usefixtures("spawned")
def test_a_spawned_worker_imports_by_name_and_judges_the_same() -> None:
    by_string = run_checks(TargetKind.ENGINE, "lmstream.conformance.examples:EchoEngine", timeout=2.0)
    by_object = run_checks(TargetKind.ENGINE, Good, timeout=2.0)
    for report in (by_string, by_object):
        assert {r.outcome for r in report.results} == {Outcome.PASSED}, [r.message for r in report.results]
    assert by_object.target == "conformance.tests._engines:Good"


@pytest.mark.usefixtures("spawned")
def test_a_spawned_worker_is_stopped_and_replaced_like_a_forked_one() -> None:
    report = run_checks(
        TargetKind.ENGINE, f"{HOSTILE}:CancelsTheAlarm", select="ES-1 or ES-2 or ES-3", timeout=T
    )
    outcomes = {r.requirement_id: r.outcome for r in report.results}
    assert outcomes == {"ES-1": Outcome.PASSED, "ES-2": Outcome.FAILED, "ES-3": Outcome.FAILED}
    assert (
        "without returning to the event loop, at conformance/tests/_hostile.py" in report.results[1].message
    )
    report = run_checks(TargetKind.ENGINE, f"{HOSTILE}:Prints", select="ES-2", timeout=T)
    assert report.results[0].stdout == "hello from the engine\n"
    with pytest.raises(TargetError, match="cannot import 'nosuchmodule'"):
        run_checks(TargetKind.ENGINE, "nosuchmodule:X")


@pytest.mark.usefixtures("spawned")
def test_spawn_refuses_what_has_no_name() -> None:
    with pytest.raises(TargetError, match="LMSTREAM_WORKER=spawn: the target has no importable name"):
        run_checks(TargetKind.ENGINE, lambda: EchoEngine())


@pytest.mark.usefixtures("a_thread")
def test_an_object_is_forked_even_from_a_caller_with_threads() -> None:
    """The DeprecationWarning of Python 3.12+ is silenced (the pytest config turns warnings into errors)."""
    result = run_check(
        get_check(TargetKind.ENGINE, "returns_async_iterable"), lambda: EchoEngine(), timeout=T
    )
    assert result.outcome is Outcome.PASSED


def test_in_process_runs_without_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSTREAM_WORKER", "in-process")
    seen: list[int] = []

    class Counting(Good):
        def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> Any:
            seen.append(os.getpid())
            return super().stream(messages)

    report = run_checks(TargetKind.ENGINE, Counting, select="ES-2", timeout=2.0)
    assert report.results[0].outcome is Outcome.PASSED and seen == [os.getpid()]


def test_a_forked_worker_is_another_process() -> None:
    seen: list[int] = []

    class Counting(Good):
        def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> Any:
            seen.append(os.getpid())
            return super().stream(messages)

    report = run_checks(TargetKind.ENGINE, Counting, select="ES-2", timeout=2.0)
    assert report.results[0].outcome is Outcome.PASSED and seen == []  # it ran in the worker's copy


def test_a_target_is_validated_even_when_no_check_is_selected() -> None:
    with pytest.raises(TargetError, match="'builtins:int' is the class int"):
        run_checks(TargetKind.ENGINE, int, select=lambda c: False)


# ----------------------------------------------------------------------------------------- the channel
@pytest.mark.parametrize("use_thread", [False, True], ids=["select", "reader thread (Windows)"])
def test_the_channel_keeps_only_the_runs_own_lines(use_thread: bool) -> None:
    read_end, write_end = os.pipe()
    receiver = Receiver(read_end, "token", use_thread=use_thread)
    sender = Sender(write_end, "token")
    try:
        os.write(write_end, b"printed by the target\n")
        assert sender.send({"t": "start", "i": 0})
        os.write(write_end, b'token{"not": "a message"}\ntoken{broken\nother{"t": "start"}\n')
        assert sender.send({"t": "result", "text": "line one\nline two"})
        assert receiver.receive(5) == {"t": "start", "i": 0}
        assert receiver.receive(5) == {"t": "result", "text": "line one\nline two"}
        assert receiver.receive(0.05) is None
    finally:
        os.close(write_end)
    try:
        assert receiver.receive(5) is CLOSED
        assert not Sender(write_end, "token").send({"t": "late"})  # a closed descriptor: broken, no error
    finally:
        receiver.close()


# ---------------------------------------------------------------------------------------- the output
def test_output_is_kept_to_its_start_and_end() -> None:
    files = OutputFiles()
    try:
        with open(files.paths["stdout"], "ab") as out:
            out.write(b"before\n" + b"a" * OUTPUT_LIMIT + b"b" * OUTPUT_LIMIT + b"\xffend")
        start = len(b"before\n")
        text = files.text("stdout", start)
        assert text.startswith("a" * (OUTPUT_LIMIT // 2) + "\n[... ")
        assert text.endswith("b" * (OUTPUT_LIMIT // 2 - 4) + "\ufffdend")
        assert f"[... {2 * OUTPUT_LIMIT + 4 - OUTPUT_LIMIT} bytes left out ...]" in text
        assert files.text("stdout", 0, start) == "before\n" and files.text("stderr", 0) == ""
    finally:
        files.close()
    assert not os.path.exists(files.directory)
