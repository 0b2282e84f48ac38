"""The machinery behind ES-5 and quiet reports: whose code is whose, how responses are observed (and left
as found), and how leftovers are said."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncGenerator
from types import AsyncGeneratorType
from typing import Any, cast

import httpx
import pytest
from kani.engines.openai.engine import OpenAIEngine

import lmstream.conformance.checks.engine as engine_checks
from lmstream.conformance import Outcome, TargetKind, run_checks
from lmstream.conformance._leftovers import LIBRARY_NOTE_PREFIX, leftover_notes, once_per_run, quiet_captured
from lmstream.conformance._origins import Origins, Owner
from lmstream.conformance._transports import ResponseLog

from ._replay import mock_transport

HERE = os.path.abspath(__file__)


# ---------------------------------------------------------------------------------------------- origins
def test_origins_tell_the_targets_code_from_libraries_and_the_standard_library() -> None:
    origins = Origins()
    assert origins.of_file(HERE).is_target  # code outside every library location is the author's
    assert origins.of_file(httpx.__file__).owner is Owner.LIBRARY
    assert origins.of_file(httpx.__file__).name == "httpx"
    assert origins.of_file(asyncio.__file__).owner is Owner.STDLIB
    assert origins.of_file(engine_checks.__file__).owner is Owner.LMSTREAM
    kani_file = sys.modules[OpenAIEngine.__module__].__file__
    assert kani_file is not None and origins.of_file(kani_file).label() == "kani"


def test_a_targets_home_makes_its_library_its_own_code() -> None:
    origins = Origins([OpenAIEngine])  # kani's engine: kani's code is the target's, httpx's is not
    kani_file = sys.modules[OpenAIEngine.__module__].__file__
    assert kani_file is not None and origins.of_file(kani_file).is_target
    assert not origins.of_file(httpx.__file__).is_target
    stdlib = Origins(["functools"])  # a home in the standard library is ignored
    assert stdlib.homes == () and not stdlib.of_file(asyncio.__file__).is_target


# ---------------------------------------------------------------------------------------------- transports
def _get(client: httpx.Client) -> httpx.Response:
    return client.get("https://api.replayed.test/v1/generate")


def test_observing_patches_only_while_it_lasts_and_nests() -> None:
    original = httpx.Client.__dict__["send"]
    outer, inner = ResponseLog(Origins(), catch_all=True), ResponseLog(Origins(), catch_all=True)
    with outer.observing():
        assert httpx.Client.__dict__["send"] is not original
        with inner.observing():
            pass
        assert httpx.Client.__dict__["send"] is not original  # the outer observation still holds it
    assert httpx.Client.__dict__["send"] is original
    assert "httpx" in outer.observed  # (and aiohttp, when a test has imported it)


def test_a_response_from_a_thread_of_its_own_goes_to_the_catch_all_log_only() -> None:
    client = httpx.Client(transport=mock_transport())
    check, live = ResponseLog(Origins(), catch_all=True), ResponseLog(Origins())
    responses: list[httpx.Response] = []
    with check.observing(), live.observing():
        thread = threading.Thread(target=lambda: responses.append(_get(client)), name="by hand")
        thread.start()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert [r.thread for r in check.responses] == ["by hand"] and live.responses == []
    (opened,) = check.responses
    assert opened.sync and opened.method == "GET" and opened.url.endswith("/v1/generate")
    assert opened.where is not None and "test_observation.py" in opened.where and opened.via == "httpx"
    assert opened.is_closed()  # a non-streaming request reads its body, which closes the response
    with check.observing():
        pass
    _get(client)
    assert len(check.responses) == 1  # nothing is recorded outside an observation
    client.close()


async def test_an_attributed_log_gets_what_its_context_opens_and_nothing_else() -> None:
    client = httpx.AsyncClient(transport=mock_transport())
    mine, other = ResponseLog(Origins()), ResponseLog(Origins())
    with mine.observing(), other.observing():
        with mine.attributed():
            request = client.build_request("GET", "https://api.replayed.test/v1/generate")
            streamed = await client.send(request, stream=True)
            assert [r.response for r in mine.open_responses()] == [streamed]
            await streamed.aclose()
        await client.get("https://api.replayed.test/v1/generate")
    assert len(mine.responses) == 1 and mine.open_responses() == [] and other.responses == []
    await client.aclose()


# ---------------------------------------------------------------------------------------------- the check
class _OwnTransport:
    """An engine on a transport the suite does not observe: judged on (a) and (b)."""

    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[str, None]:
        yield "Hel"
        await asyncio.sleep(0)
        yield "lo"


def test_a_stream_on_another_transport_is_judged_on_a_and_b_and_says_so() -> None:
    report = run_checks(TargetKind.ENGINE, _OwnTransport, select="ES-5")
    (result,) = report.results
    assert result.outcome is Outcome.PASSED
    assert "(b) 1 async generator(s) of the engine's own code, closed" in result.message
    assert "(c) no response was opened through " in result.message and "httpx" in result.message
    assert "judged on (a) and (b)" in result.message


# ---------------------------------------------------------------------------------------------- leftovers
def test_library_leftovers_are_said_once_per_run_and_socket_warnings_folded() -> None:
    folded = quiet_captured(
        [
            "warning: ResourceWarning: unclosed transport <_SelectorSocketTransport fd=9> (at x.py:1)",
            "warning: ResourceWarning: unclosed <socket.socket fd=8, family=2> (at y.py:2)",
            "warning: UserWarning: something else",
        ]
    )
    assert folded[0] == "warning: UserWarning: something else"
    assert folded[1].startswith(f"{LIBRARY_NOTE_PREFIX}asyncio left 2 socket(s)")
    note = f"note: {folded[1]}"
    messages = once_per_run([f"first\n{note}", note, "plain"])
    assert messages == [f"first\n{note}", "", "plain"]


async def test_a_librarys_async_generator_left_open_is_not_reported_the_targets_is() -> None:
    async def own() -> AsyncGenerator[int, None]:
        yield 1

    agen = cast(AsyncGeneratorType[int, None], own())  # an async generator function's result is one
    await agen.__anext__()
    origins = Origins()

    def name(a: AsyncGeneratorType[Any, Any]) -> str:
        return a.ag_code.co_name

    notes = leftover_notes(origins, [], [agen], describe_agen=name, iterated_by=lambda a: None)
    assert notes == ["async generator own was left open, never closed; the suite closed it"]
    by_library = leftover_notes(
        origins, [], [agen], describe_agen=name, iterated_by=lambda a: httpx.Response.aiter_raw.__code__
    )
    assert by_library == []  # the target's generator that a library iterates is the library's to close
    await agen.aclose()


@pytest.mark.parametrize("name", ["httpx_careful"])
def test_the_hooks_are_as_they_were_after_a_check(name: str) -> None:
    before = sys.get_asyncgen_hooks()
    run_checks(TargetKind.ENGINE, f"conformance.tests._sdk_engines:{name}", select="ES-5")
    assert sys.get_asyncgen_hooks() == before
    assert httpx.AsyncClient.send.__name__ == "send" and not hasattr(httpx.AsyncClient.send, "__wrapped__")
