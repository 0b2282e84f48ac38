"""Targets are resolved and validated by shape, without being called; every problem is one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kani.streaming
import pytest

from lmstream.conformance import (
    EngineTarget,
    TargetError,
    TargetKind,
    engine_target,
    load_object,
    manager_target,
    resolve_target,
    round_target,
)
from lmstream.conformance.examples import EchoEngine
from lmstream.reference import StreamManager, round_stream

from ._engines import Good


def _error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(TargetError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("nosuchmodule:x", "cannot import 'nosuchmodule': No module named 'nosuchmodule'"),
        ("os:nosuchattr", "module 'os' has no attribute 'nosuchattr'"),
        ("os:path.nosuch", "'os:path' has no attribute 'nosuch'"),
        ("os", "'os' is not a target: expected module:attribute"),
        (":x", "is not a target"),
        ("os:", "is not a target"),
    ],
)
def test_load_object_errors_are_one_line(spec: str, fragment: str) -> None:
    assert fragment in _error(load_object, spec)


def test_load_object_follows_dotted_attributes() -> None:
    import os.path

    assert load_object("os:path.join") is os.path.join


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    return tmp_path


def test_a_module_with_a_syntax_error(module_dir: Path) -> None:
    (module_dir / "lmstream_test_broken_syntax.py").write_text("def f(:\n    pass\n")
    message = _error(load_object, "lmstream_test_broken_syntax:f")
    assert message.startswith("cannot import 'lmstream_test_broken_syntax': SyntaxError: ")
    assert "line 1" in message


def test_a_module_that_raises_or_lacks_a_dependency(module_dir: Path) -> None:
    (module_dir / "lmstream_test_raises.py").write_text("raise ValueError('no config')\n")
    (module_dir / "lmstream_test_missing_dep.py").write_text("import lmstream_no_such_dependency\n")
    assert "importing 'lmstream_test_raises' raised ValueError('no config')" in _error(
        load_object, "lmstream_test_raises:x"
    )
    message = _error(load_object, "lmstream_test_missing_dep:x")
    assert "importing 'lmstream_test_missing_dep' failed: ModuleNotFoundError" in message
    assert "lmstream_no_such_dependency" in message
    for name in ("lmstream_test_raises", "lmstream_test_missing_dep"):
        sys.modules.pop(name, None)


async def _async_factory() -> EchoEngine:
    return EchoEngine()


async def _agen_function() -> Any:
    yield "x"


@pytest.mark.parametrize(
    ("target", "is_factory"),
    [(EchoEngine(), False), (EchoEngine, True), (_async_factory, True), (_agen_function, True), (Good, True)],
)
def test_engine_targets_accepted(target: object, is_factory: bool) -> None:
    resolved = engine_target(target)
    assert isinstance(resolved, EngineTarget)
    assert resolved.is_factory is is_factory
    assert resolved.obj is target


class _StreamTakesNothing:
    def stream(self) -> None:
        return None


def _needs_arguments(messages: object) -> None:
    return None


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        (int, "is the class int, which has neither stream() nor __aiter__; expected an engine"),
        (5, "is an int, expected an engine (an object with stream(messages, functions=None, **hyperparams))"),
        (sys, "is the module sys, expected an engine"),
        (_agen_function(), "a single stream, which can be read only once"),
        (_StreamTakesNothing(), "cannot be called as stream(messages)"),
        (_needs_arguments, "cannot be called as a zero-argument callable: its signature is (messages"),
    ],
)
def test_engine_targets_refused(target: object, fragment: str) -> None:
    assert fragment in _error(engine_target, target)


def test_builtins_int_by_name() -> None:
    message = _error(resolve_target, TargetKind.ENGINE, "builtins:int")
    assert message.startswith("'builtins:int' is the class int")


@pytest.mark.parametrize("factory", [StreamManager, kani.streaming.StreamManager])
def test_manager_factories_accepted(factory: object) -> None:
    assert manager_target(factory).factory is factory


def _no_lock(stream_iter: object, role: object, *, after: object = None) -> None:
    return None


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        (5, "is an int, expected a ManagerFactory"),
        (_no_lock, "cannot be called as (stream_iter, role, *, after=None, lock=None)"),
        (EchoEngine, "cannot be called as (stream_iter, role"),
    ],
)
def test_manager_factories_refused(target: object, fragment: str) -> None:
    assert fragment in _error(manager_target, target)


def test_round_targets() -> None:
    assert round_target(round_stream).factory is round_stream
    assert "cannot be called as (next_step, role)" in _error(round_target, _needs_arguments)
    assert "expected a RoundStreamFactory" in _error(round_target, "not callable")


def test_resolve_target_by_name_and_kind() -> None:
    resolved = resolve_target(TargetKind.ENGINE, "lmstream.conformance.examples:EchoEngine")
    assert isinstance(resolved, EngineTarget) and resolved.name == "lmstream.conformance.examples:EchoEngine"
    assert resolve_target(TargetKind.ENGINE, resolved) is resolved
    assert resolve_target(TargetKind.MANAGER, "lmstream.reference:StreamManager").name.endswith(
        "StreamManager"
    )


def test_objects_are_named_by_their_import_path() -> None:
    assert engine_target(Good).name == f"{Good.__module__}:Good"
    assert engine_target(EchoEngine()).name.startswith("EchoEngine ")  # an instance: its repr
