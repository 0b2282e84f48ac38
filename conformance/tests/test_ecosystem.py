"""The suite over real engines, written as their authors write them (``_sdk_engines``): over the openai and
anthropic SDKs, plain httpx and kani's own engines, naive and careful, replayed in memory and over real
sockets. Each fails exactly the requirements it breaks, and ES-5's verdict stands beside the measured
truth (was the response closed when ``aclose()`` returned?), so that the two cannot drift apart."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmstream.conformance import STANDARD_PROMPT, Outcome, Report, TargetKind, run_checks

from . import _sdk_engines
from ._engines import KANI_PROMPT
from ._replay import SERVER_ENV, LocalServer
from ._sdk_engines import ENGINES, SOCKET_ONLY, RealEngine
from ._truth import measure, open_connections

MODULE = "conformance.tests._sdk_engines"
KANI_MESSAGES = "conformance.tests._engines:KANI_PROMPT"
ROOT = Path(__file__).resolve().parents[2]
CASES = [(engine, socket) for engine in ENGINES for socket in (False, True)] + [
    (engine, True) for engine in SOCKET_ONLY
]


def _id(case: tuple[RealEngine, bool]) -> str:
    return case[0].name + ("-socket" if case[1] else "")


def _failed(report: Report) -> set[str]:
    return {r.requirement_id for r in report.results if r.outcome is Outcome.FAILED}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running, pytest.MonkeyPatch.context() as patch:
        patch.setenv(SERVER_ENV, running.url)
        yield running


@pytest.fixture(scope="module")
def reports(server: LocalServer) -> dict[str, Report]:
    """The whole engine suite, once per engine and network."""
    with warnings.catch_warnings():
        # The engines' clients (never closed, as engines' are not) are collected after the runs.
        warnings.simplefilter("ignore", ResourceWarning)
        reports = {
            _id(case): run_checks(
                TargetKind.ENGINE,
                f"{MODULE}:{case[0].name}{'_socket' if case[1] else ''}",
                messages=KANI_MESSAGES if case[0].kani else None,
            )
            for case in CASES
        }
        gc.collect()
    return reports


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_each_real_engine_fails_exactly_what_it_breaks(
    case: tuple[RealEngine, bool], reports: dict[str, Report]
) -> None:
    report = reports[_id(case)]
    assert _failed(report) == case[0].fails, "\n".join(
        f"{r.requirement_id} {r.outcome.value}: {r.message}" for r in report.results
    )
    assert not [r for r in report.results if r.outcome is Outcome.SKIPPED]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_es5_verdict_is_the_measured_truth(
    case: tuple[RealEngine, bool], reports: dict[str, Report], server: LocalServer
) -> None:
    """The verdict and, beside it, what was really open when aclose() returned (a response body the replay
    handed out, or a connection to the local server)."""
    engine, over_sockets = case
    (es5,) = [r for r in reports[_id(case)].results if r.requirement_id == "ES-5"]
    leaks_a_response = "ES-5" in engine.fails and engine.name != "httpx_inner_left"
    messages = KANI_PROMPT if engine.kani else _standard()
    if over_sockets:
        tag = f"truth-{engine.name}"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(SERVER_ENV, f"{server.url}/{tag}")
            truth = measure(getattr(_sdk_engines, f"{engine.name}_socket"), messages, server=server, tag=tag)
    else:
        truth = measure(getattr(_sdk_engines, engine.name), messages)
    assert truth.opened >= 1
    assert (truth.left_open > 0) is leaks_a_response, truth
    if leaks_a_response:
        assert es5.outcome is Outcome.FAILED
        opened = "(c) 1 network response(s) the stream opened were still open when aclose() returned"
        library = "aiohttp" if engine.name.startswith("aiohttp") else "httpx"
        assert opened in es5.message and f"the {library} response to POST " in es5.message
        where = "kani/engines/openai/engine.py:" if engine.kani else "_sdk_engines.py:"
        assert f"opened at {where}" in es5.message or f"/{where}" in es5.message
    elif "ES-5" in engine.fails:  # the response is closed, the engine's own generator is not
        assert es5.outcome is Outcome.FAILED
        assert "(c)" not in es5.message.split("Fix:")[0]
        assert "(b) async generator(s) of the engine's own code were dropped unclosed" in es5.message
        assert "_tokens()" in es5.message
    else:
        assert es5.outcome is Outcome.PASSED, es5.message
        assert "closed when aclose() returned" in es5.message
        library = "aiohttp" if engine.name.startswith("aiohttp") else "httpx"
        assert f"(c) 1 {library} response(s)" in es5.message


def _standard() -> list[object]:
    return list(STANDARD_PROMPT)


def test_a_careful_engine_leaves_the_server_within_a_bound(server: LocalServer) -> None:
    """Over real sockets the server sees a careful client leave once the stream is closed."""
    tag = "leave-careful"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SERVER_ENV, f"{server.url}/{tag}")
        truth = measure(_sdk_engines.openai_careful_socket, _standard(), server=server, tag=tag)
    assert truth.closed
    still_open, seen = server.wait_left(tag, timeout=2.0)
    assert (still_open, seen) == (0, 1)


def test_kani_engines_from_the_command_line(server: LocalServer) -> None:
    """The command line, as an engine author runs it: kani's AnthropicEngine passes --strict, its
    OpenAIEngine fails ES-5 (and ES-10), in --format json."""
    verdicts: dict[str, dict[str, str]] = {}
    codes: dict[str, int] = {}
    for name in ("kani_anthropic", "kani_openai"):
        ran = subprocess.run(
            [
                sys.executable,
                "-m",
                "lmstream.conformance",
                "check",
                "engine",
                f"{MODULE}:{name}",
                "--messages",
                KANI_MESSAGES,
                "--strict",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env={**os.environ, SERVER_ENV: server.url},
        )
        document = json.loads(ran.stdout)
        verdicts[name] = {r["id"]: r["outcome"] for r in document["results"]}
        codes[name] = ran.returncode
    assert set(verdicts["kani_anthropic"].values()) == {"passed"} and codes["kani_anthropic"] == 0
    failed = {rid for rid, outcome in verdicts["kani_openai"].items() if outcome == "failed"}
    assert failed == {"ES-5", "ES-10"} and codes["kani_openai"] == 1


def test_the_truth_finds_an_open_socket(server: LocalServer) -> None:
    """The socket-level measure itself: a connection held open is found, and once closed it is not."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as held:
        assert held in open_connections(server.port)
    assert held not in open_connections(server.port)
