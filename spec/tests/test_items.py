"""The executable engine-stream rules: each bad item is named with the requirement it breaks."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

import pytest
from kani.engines.base import Completion as KaniCompletion
from kani.models import ChatMessage, ChatRole

from lmstream.spec import (
    StreamProtocolError,
    check_completion,
    check_item,
    check_stream,
    describe_item,
    is_completion,
)


@dataclass(frozen=True)
class Msg:
    role: str
    text: object


@dataclass(frozen=True)
class Comp:
    message: object
    prompt_tokens: object = None
    completion_tokens: object = None


class Token(str):
    pass


class RaisingMessage:
    role = "assistant"

    @property
    def text(self) -> str:
        raise RuntimeError("boom")


def _rid(error: StreamProtocolError | None) -> str | None:
    return None if error is None else error.requirement_id


@pytest.mark.parametrize(
    "item",
    [
        "tok",
        "",
        Token("sub"),
        Comp(Msg("assistant", "hi"), 1, 2),
        Comp(Msg("assistant", None)),
        KaniCompletion(ChatMessage(role=ChatRole.ASSISTANT, content="x"), 0, 5),
    ],
)
def test_allowed_items(item: object) -> None:
    assert check_item(item) is None


@pytest.mark.parametrize(
    ("item", "rid", "fragment"),
    [
        (b"tok", "ES-2", "bytes"),
        (None, "ES-2", "NoneType"),
        (3, "ES-2", "int"),
        ({"text": "x"}, "ES-2", "dict"),
        (ValueError("x"), "ES-2", "raised, not yielded"),
        (Msg("assistant", "x"), "ES-2", "missing message"),
        (Comp("not a message"), "ES-2", "lacks role, text"),
        (Comp(Msg("assistant", 5)), "ES-2", "message text is int"),
        (Comp(Msg("assistant", RaisingMessage())), "ES-2", "message text"),
        (Comp(RaisingMessage()), "ES-2", "lacks text"),
        (Comp(Msg("assistant", "x"), -1), "ES-4", "prompt_tokens is int -1"),
        (Comp(Msg("assistant", "x"), 1, "2"), "ES-4", "completion_tokens is str"),
        (Comp(Msg("assistant", "x"), True), "ES-4", "prompt_tokens is bool"),
        (Comp(Msg("assistant", "x"), 1.0), "ES-4", "float"),
    ],
)
def test_bad_items_name_their_requirement(item: object, rid: str, fragment: str) -> None:
    error = check_item(item)
    assert _rid(error) == rid
    assert error is not None and fragment in error.detail and "\n" not in str(error)
    assert error.item is item
    assert is_completion(item) is (rid == "ES-4")  # the counts are judged apart from the shape


def test_anything_after_the_completion_is_es3() -> None:
    assert _rid(check_item("tok", completion_seen=True)) == "ES-3"
    error = check_item(Comp(Msg("assistant", "x")), completion_seen=True)
    assert error is not None and error.requirement_id == "ES-3" and "second completion" in error.detail
    error = check_item(42, completion_seen=True)
    assert (
        error is not None and error.requirement_id == "ES-3" and "int 42 after the completion" in error.detail
    )


def test_check_completion_accepts_kani_and_dataclasses() -> None:
    assert check_completion(KaniCompletion(ChatMessage(role=ChatRole.ASSISTANT, content=None))) is None
    assert is_completion(Comp(Msg("user", "x"), None, 0))


async def _agen() -> AsyncGenerator[str, None]:
    yield "x"


async def _coro() -> str:
    return "x"


async def test_check_stream_es1() -> None:
    gen = _agen()
    assert check_stream(gen) is None
    await gen.aclose()
    for bad, hint in ((["x"], "synchronous iterable"), (iter(["x"]), "synchronous iterable"), (None, "")):
        error = check_stream(bad)
        assert error is not None and error.requirement_id == "ES-1" and hint in error.detail
    coro = _coro()
    error = check_stream(coro)
    assert error is not None and "coroutine" in error.detail
    coro.close()


def test_describe_item_is_short_and_one_line() -> None:
    text = describe_item("a\nb" * 100)
    assert text.startswith("str ") and len(text) <= 64 and "\n" not in text

    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert describe_item(BadRepr()) == "BadRepr <repr raised RuntimeError>"
