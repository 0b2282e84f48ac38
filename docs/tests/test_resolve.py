"""Names written where an object is defined or imported reach the path it is documented under."""

from __future__ import annotations

import asyncio

from docs._ext.resolve import MISSING, builtin_type_path, lookup, public_paths, qualify
from lmstream.spec import StreamProtocolError, StreamState


def test_lookup_follows_modules_and_attributes() -> None:
    assert lookup("asyncio.locks.Lock") is asyncio.Lock
    assert lookup("lmstream.spec.StreamState.STOPPED") is StreamState.STOPPED
    assert lookup("lmstream.spec.nothing_here") is MISSING
    assert lookup("no_such_module_anywhere.X") is MISSING


def test_public_paths_go_from_the_defining_module_to_the_package() -> None:
    assert next(public_paths("asyncio.locks.Lock", asyncio.Lock)) == "asyncio.Lock"
    paths = list(public_paths("lmstream.spec.items.StreamProtocolError", StreamProtocolError))
    assert paths[0] == "lmstream.spec.StreamProtocolError"
    assert "lmstream.spec.errors.StreamProtocolError" in paths
    assert "lmstream.spec.items.StreamProtocolError" not in paths  # the path given is not repeated


def test_public_paths_keep_the_attribute_chain() -> None:
    paths = list(public_paths("lmstream.spec.state.StreamState.STOPPED", StreamState.STOPPED))
    assert paths == ["lmstream.spec.StreamState.STOPPED"]


def test_qualify_reads_the_writing_module_namespace() -> None:
    documented = {"lmstream.spec.StreamProtocolError", "lmstream.spec.StreamState.INCOMPLETE"}
    assert (
        qualify("StreamProtocolError", "lmstream.spec.items", documented)
        == "lmstream.spec.StreamProtocolError"
    )
    assert qualify("~StreamState.INCOMPLETE", "lmstream.spec.errors", documented) == (
        "lmstream.spec.StreamState.INCOMPLETE"
    )
    assert qualify("StreamProtocolError", "lmstream.spec.state", documented) is None  # not a name there
    assert qualify("StreamProtocolError", "lmstream.spec.items", set[str]()) is None  # nothing documented


def test_interpreter_types_reach_the_types_module() -> None:
    """Python 3.10 names ``types.AsyncGeneratorType`` ``async_generator`` in annotations."""
    assert builtin_type_path("async_generator") == "types.AsyncGeneratorType"
    assert builtin_type_path("coroutine") == "types.CoroutineType"
    assert builtin_type_path("str") is None  # a builtin with a name of its own needs no help
