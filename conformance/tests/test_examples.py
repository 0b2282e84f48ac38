"""The example engines and the scripted streams behave as documented."""

from __future__ import annotations

import asyncio

import pytest

from lmstream.conformance import STANDARD_PROMPT, Block, Fail, Pause, StreamProbe, scripted_stream
from lmstream.conformance.examples import DEMO_SCRIPT, EchoEngine, ScriptedEngine
from lmstream.reference import ChatMessage


async def test_echo_repeats_the_last_user_message_word_by_word() -> None:
    items = [item async for item in EchoEngine().stream(list(STANDARD_PROMPT))]
    assert items[:-1] == ["Say", " hello", " in", " five", " words", " or", " fewer."]
    completion = items[-1]
    assert not isinstance(completion, str)
    assert completion.message.text == "Say hello in five words or fewer."
    assert (completion.message.role, completion.completion_tokens) == ("assistant", 7)


@pytest.mark.parametrize(
    ("text", "tokens"), [("", []), ("  a  b ", ["  a", "  b", " "]), ("one", ["one"]), (" \n", [" \n"])]
)
async def test_echo_keeps_every_character_and_yields_no_empty_token(text: str, tokens: list[str]) -> None:
    messages = [{"role": "user", "content": "ignored"}, ChatMessage("user", text)]
    items = [item async for item in EchoEngine().stream(messages)]
    assert items[:-1] == tokens and "".join(tokens) == text


async def test_scripted_engine_runs_its_script_afresh_and_records_it() -> None:
    engine = ScriptedEngine()
    first = [item async for item in engine.stream([])]
    assert first == list(DEMO_SCRIPT)
    assert [item async for item in engine.stream([])] == first
    probe = engine.probes[0]
    assert probe.ended and probe.cleanup_ran and not probe.closed and probe.yielded == first
    assert probe.requests == len(first) + 1  # one request per item, and the one that ends the stream


async def test_a_probe_counts_requests_as_the_consumer_makes_them() -> None:
    probe = StreamProbe()
    stream = scripted_stream(["a", "b", "c"], probe)
    assert await stream.__anext__() == "a" and probe.requests == 1
    assert await stream.__anext__() == "b" and probe.requests == 2
    await stream.aclose()
    assert probe.closed and probe.cleanup_ran and not probe.ended and probe.requests == 2


def _blocked(probe: StreamProbe) -> bool:
    return probe.blocked


async def test_block_waits_for_release_and_fail_raises_the_very_object() -> None:
    error = ConnectionError("gone")
    probe = StreamProbe()
    stream = scripted_stream(["a", Block(), "b", Pause(0.001), Fail(error)], probe, pause=None)
    assert await stream.__anext__() == "a"
    pending = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    assert _blocked(probe) and not pending.done()
    probe.release()
    assert await pending == "b" and not _blocked(probe)
    with pytest.raises(ConnectionError) as info:
        await stream.__anext__()
    assert info.value is error and probe.raised is error and probe.cleanup_ran


async def test_a_cancelled_stream_records_it() -> None:
    probe = StreamProbe()
    stream = scripted_stream([Block(), "never"], probe)
    pending = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert probe.cancelled and probe.cleanup_ran
