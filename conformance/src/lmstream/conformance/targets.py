"""What the suite checks: resolving ``module:attribute`` and validating a target before any check runs.

Three kinds of target (:class:`~lmstream.conformance.model.TargetKind`):

* **engine**: an object with ``stream(messages, functions=None, **hyperparams)`` (kani's engine shape), or a
  zero-argument callable, sync or async (a class included), returning such an object or an engine stream.
  A callable is called afresh by every check, so each check gets its own engine, bound to its own event
  loop; prefer it for engines that hold connections or locks. An engine *object* is shared by all checks.
* **manager**: a :class:`~lmstream.spec.ManagerFactory`, ``(stream_iter, role, *, after=None, lock=None)``,
  such as ``lmstream.reference:StreamManager`` or ``kani.streaming:StreamManager``.
* **round**: a :class:`~lmstream.spec.RoundStreamFactory`, ``(next_step, role)``.

Validation looks at shapes and signatures (:func:`inspect.signature`) and never calls the target. Every
problem is one :class:`TargetError` whose message is one line naming what was found and what was
expected; the command line prints it after ``lmstream:`` and exits with status 2.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Union, cast

from lmstream.spec import StreamManager, describe_item

from .describe import describe_exception
from .model import TargetKind

__all__ = [
    "ENGINE_EXPECTED",
    "MANAGER_EXPECTED",
    "ROUND_EXPECTED",
    "EngineTarget",
    "ManagerTarget",
    "RoundTarget",
    "Target",
    "TargetError",
    "engine_target",
    "load_messages",
    "load_object",
    "manager_target",
    "resolve_target",
    "round_target",
]

ENGINE_EXPECTED: Final = (
    "an engine (an object with stream(messages, functions=None, **hyperparams)) or a zero-argument "
    "callable returning one"
)
MANAGER_EXPECTED: Final = (
    "a ManagerFactory: a callable (stream_iter, role, *, after=None, lock=None) such as a StreamManager class"
)
ROUND_EXPECTED: Final = (
    "a RoundStreamFactory: a callable (next_step, role) returning an async iterator of managers"
)


class TargetError(Exception):
    """The target cannot be imported or is not a valid target. ``str()`` is one line, without a prefix."""


# ---------------------------------------------------------------------------------------------- loading
def load_object(spec: str) -> object:
    """Import ``module:attribute`` (the attribute may be dotted: ``pkg.mod:Class.factory``).

    :raises TargetError: naming the part that failed (the import, with the error it raised, or the missing
        attribute).
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name.strip() or not attribute.strip():
        raise TargetError(f"{spec!r} is not a target: expected module:attribute, e.g. mypkg.engines:MyEngine")
    obj: object = _import(module_name)
    path = module_name
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            what = f"module {module_name!r}" if path == module_name else repr(path)
            raise TargetError(f"{what} has no attribute {part!r} (looking up {spec!r})") from None
        except BaseException as exc:  # a KeyboardInterrupt here is the target's: it runs in a worker
            raise TargetError(f"reading {path}.{part} raised {describe_exception(exc)}") from None
        path = f"{path}.{part}" if path != module_name else f"{module_name}:{part}"
    return obj


def load_messages(spec: str) -> tuple[list[object], str]:
    """Import a prompt named ``module:attribute``: a sequence of messages, or a zero-argument callable
    returning one. Returns the messages (as a new list) and how a snippet gets them (``"mod:PROMPT"``, or
    ``"mod:make_prompt()"`` for a callable).

    :raises TargetError: when it cannot be imported, raises when called, or is not a sequence.
    """
    value = load_object(spec)
    name = spec
    if callable(value):
        try:
            value = value()
        except Exception as exc:
            raise TargetError(f"messages {spec!r}: calling it raised {describe_exception(exc)}") from None
        name = f"{spec}()"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TargetError(f"messages {spec!r} is {_a(value)}, expected a sequence of messages")
    return list(cast(Sequence[object], value)), name


def _import(module_name: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise TargetError(f"cannot import {module_name!r}: {exc}") from None
        raise TargetError(f"importing {module_name!r} failed: {describe_exception(exc)}") from None
    except SyntaxError as exc:
        where = f" ({exc.filename}, line {exc.lineno})" if exc.filename else ""
        raise TargetError(f"cannot import {module_name!r}: SyntaxError: {exc.msg}{where}") from None
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: the target's, it runs in a worker
        raise TargetError(f"importing {module_name!r} raised {describe_exception(exc)}") from None


# ---------------------------------------------------------------------------------------------- shapes
def _label(obj: object) -> str:
    """``module:qualname`` for importable classes and functions (snippets can import them), else a repr."""
    name = getattr(obj, "__qualname__", None)
    module = getattr(obj, "__module__", None)
    if isinstance(name, str) and "<" not in name and isinstance(module, str) and module != "__main__":
        return f"{module}:{name}"
    return name if isinstance(name, str) else describe_item(obj)


def _a(obj: object) -> str:
    if inspect.isclass(obj):
        return f"the class {obj.__qualname__}"
    if inspect.ismodule(obj):
        return f"the module {obj.__name__}"
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _signature(obj: object) -> inspect.Signature | None:
    try:
        return inspect.signature(cast(Callable[..., object], obj))
    except (TypeError, ValueError):  # builtins and some C callables have none: accept, judge at run time
        return None


def _require_binds(
    obj: object, label: str, args: tuple[object, ...], kwargs: dict[str, object], shape: str, expected: str
) -> None:
    sig = _signature(obj)
    if sig is None:
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TargetError(
            f"{label!r} cannot be called as {shape}: its signature is {sig} ({exc}); expected {expected}"
        ) from None


def _safe_getattr(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:  # a property that raises is as good as missing
        return None


@dataclass(frozen=True)
class EngineTarget:
    """A validated engine target.

    :ivar obj: what was given: an engine object or a zero-argument callable.
    :ivar name: how it was named (``"pkg.mod:Engine"``), for messages and reproduction snippets.
    :ivar is_factory: whether ``obj`` is called (afresh by each check) to get the engine or the stream.
    """

    obj: object
    name: str
    is_factory: bool

    async def instantiate(self) -> object:
        """The engine (or, for a stream factory, the stream): ``obj`` itself, or what calling it gives,
        awaited when it is awaitable."""
        if not self.is_factory:
            return self.obj
        made = cast(Callable[[], object], self.obj)()
        if inspect.isawaitable(made):
            made = await cast(Awaitable[object], made)
        return made


@dataclass(frozen=True)
class ManagerTarget:
    """A validated manager factory. Calling it calls the factory: ``(stream_iter, role, *, after, lock)``."""

    factory: object
    name: str

    def __call__(
        self,
        stream_iter: object,
        role: object,
        *,
        after: Callable[[Any], Awaitable[object]] | None = None,
        lock: object = None,
    ) -> StreamManager[Any]:
        """Build a manager. The result is typed as a manager but is whatever the factory returned: checks
        observe its behaviour (a missing method fails the check that needs it)."""
        factory = cast(Callable[..., StreamManager[Any]], self.factory)
        return factory(stream_iter, role, after=after, lock=lock)


@dataclass(frozen=True)
class RoundTarget:
    """A validated round-stream factory. Calling it calls the factory: ``(next_step, role)``."""

    factory: object
    name: str

    def __call__(self, next_step: Callable[[Any], Awaitable[object]], role: object) -> AsyncIterator[Any]:
        """Start a round. The result is whatever the factory returned (checks observe it)."""
        return cast(Callable[..., AsyncIterator[Any]], self.factory)(next_step, role)


Target = Union[EngineTarget, ManagerTarget, RoundTarget]  # noqa: UP007 - a runtime alias on Python 3.10
"""Any validated target."""


def engine_target(obj: object, *, name: str | None = None) -> EngineTarget:
    """Validate an engine target (see the module docstring) without calling it.

    :raises TargetError: for anything that is neither an engine nor a zero-argument callable that could
        return one.
    """
    label = name or _label(obj)
    if inspect.isclass(obj):
        if callable(_safe_getattr(obj, "stream")) or callable(_safe_getattr(obj, "__aiter__")):
            _require_binds(obj, label, (), {}, "a zero-argument constructor", ENGINE_EXPECTED)
            return EngineTarget(obj, label, is_factory=True)
        raise TargetError(
            f"{label!r} is {_a(obj)}, which has neither stream() nor __aiter__; expected {ENGINE_EXPECTED}"
        )
    stream = _safe_getattr(obj, "stream")
    if stream is not None:
        if not callable(stream):
            raise TargetError(
                f"{label!r} has a stream attribute that is {_a(stream)}; expected {ENGINE_EXPECTED}"
            )
        _require_binds(stream, f"{label}.stream", ("messages",), {}, "stream(messages)", ENGINE_EXPECTED)
        return EngineTarget(obj, label, is_factory=False)
    if callable(_safe_getattr(type(obj), "__aiter__")):
        raise TargetError(
            f"{label!r} is {_a(obj)}, a single stream, which can be read only once; expected "
            f"{ENGINE_EXPECTED} (e.g. the async generator function itself)"
        )
    if callable(obj) and not inspect.ismodule(obj):
        _require_binds(obj, label, (), {}, "a zero-argument callable", ENGINE_EXPECTED)
        return EngineTarget(obj, label, is_factory=True)
    raise TargetError(f"{label!r} is {_a(obj)}, expected {ENGINE_EXPECTED}")


def manager_target(obj: object, *, name: str | None = None) -> ManagerTarget:
    """Validate a manager factory target by its signature, without calling it.

    :raises TargetError: if it is not callable or cannot take ``(stream_iter, role, *, after=, lock=)``.
    """
    label = name or _label(obj)
    if not callable(obj) or inspect.ismodule(obj):
        raise TargetError(f"{label!r} is {_a(obj)}, expected {MANAGER_EXPECTED}")
    _require_binds(
        obj,
        label,
        ("stream_iter", "role"),
        {"after": None, "lock": None},
        "(stream_iter, role, *, after=None, lock=None)",
        MANAGER_EXPECTED,
    )
    return ManagerTarget(obj, label)


def round_target(obj: object, *, name: str | None = None) -> RoundTarget:
    """Validate a round-stream factory target by its signature, without calling it.

    :raises TargetError: if it is not callable or cannot take ``(next_step, role)``.
    """
    label = name or _label(obj)
    if not callable(obj) or inspect.ismodule(obj):
        raise TargetError(f"{label!r} is {_a(obj)}, expected {ROUND_EXPECTED}")
    _require_binds(obj, label, ("next_step", "role"), {}, "(next_step, role)", ROUND_EXPECTED)
    return RoundTarget(obj, label)


def resolve_target(kind: TargetKind, target: object, *, name: str | None = None) -> Target:
    """Validate ``target`` as a ``kind`` target; a ``str`` is first imported as ``module:attribute``.

    Already-validated targets of the right kind are returned unchanged.

    :raises TargetError: when it cannot be imported or is not a valid target of that kind.
    """
    if isinstance(target, str):
        name = name or target
        target = load_object(target)
    if kind is TargetKind.ENGINE:
        return target if isinstance(target, EngineTarget) else engine_target(target, name=name)
    if kind is TargetKind.MANAGER:
        return target if isinstance(target, ManagerTarget) else manager_target(target, name=name)
    return target if isinstance(target, RoundTarget) else round_target(target, name=name)
