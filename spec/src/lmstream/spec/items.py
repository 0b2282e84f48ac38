"""What an engine stream may yield, as executable rules (ES-1 to ES-4).

These functions are the one implementation of "is this item allowed here?": the reference manager calls
them on its slow path (anything that is not a plain ``str``) and the conformance suite's checks and
``validate()`` call them on every item. Each problem comes back as a :class:`StreamProtocolError` naming
the requirement, never raised, so the caller decides what to do with it.

The checks are structural (SM-14): a completion is any object with ``message`` (itself with ``role`` and
``text``), ``prompt_tokens`` and ``completion_tokens``; no class is required. Attribute access that raises
counts as the attribute missing, so a broken property is reported, not propagated.
"""

from __future__ import annotations

from typing import Final

from typing_extensions import TypeIs

from .errors import StreamProtocolError
from .protocols import Completion

__all__ = ["check_completion", "check_item", "check_stream", "describe_item", "is_completion"]

_MISSING: Final = object()
_COMPLETION_FIELDS: Final = ("message", "prompt_tokens", "completion_tokens")
_MESSAGE_FIELDS: Final = ("role", "text")


def describe_item(item: object, *, limit: int = 60) -> str:
    """A short, one-line description of ``item`` for error messages: its type and a truncated repr."""
    try:
        text = repr(item)
    except Exception as exc:  # a repr that raises must not hide the original problem
        text = f"<repr raised {type(exc).__name__}>"
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(item).__name__} {text}"


def _get(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, _MISSING)
    except Exception:  # a property that raises is as good as missing
        return _MISSING


def _count_ok(value: object) -> bool:
    return value is None or (type(value) is not bool and isinstance(value, int) and value >= 0)


def check_completion(item: object) -> StreamProtocolError | None:
    """Whether ``item`` is a well-formed completion: ES-2 for its shape, ES-4 for its token counts.

    Returns ``None`` when it is one, else the error describing the first problem found.
    """
    error = _shape_problem(item)
    if error is not None:
        return error
    for name in ("prompt_tokens", "completion_tokens"):
        value = _get(item, name)
        if not _count_ok(value):
            return StreamProtocolError(
                "ES-4",
                f"yielded a completion whose {name} is {describe_item(value)}; expected None or an int >= 0",
                item=item,
            )
    return None


def _shape_problem(item: object) -> StreamProtocolError | None:
    """The ES-2 problem of ``item`` as a completion (a missing or mistyped member), or ``None``."""
    missing = [name for name in _COMPLETION_FIELDS if _get(item, name) is _MISSING]
    if missing:
        return StreamProtocolError(
            "ES-2",
            f"yielded {describe_item(item)}, which is neither a str token nor a Completion "
            f"(missing {', '.join(missing)}); expected a str or an object with message, prompt_tokens "
            "and completion_tokens",
            item=item,
        )
    message = _get(item, "message")
    missing = [name for name in _MESSAGE_FIELDS if _get(message, name) is _MISSING]
    if missing:
        return StreamProtocolError(
            "ES-2",
            f"yielded a completion whose message {describe_item(message)} lacks {', '.join(missing)}; "
            "expected a message with role and text",
            item=item,
        )
    text = _get(message, "text")
    if text is not None and not isinstance(text, str):
        return StreamProtocolError(
            "ES-2",
            f"yielded a completion whose message text is {describe_item(text)}; expected a str or None",
            item=item,
        )
    return None


def is_completion(item: object) -> TypeIs[Completion]:
    """Whether ``item`` has the shape of a :class:`~lmstream.spec.Completion` (ES-2): ``message`` (with
    ``role`` and a ``str`` or ``None`` ``text``), ``prompt_tokens`` and ``completion_tokens``.

    Only the shape: the counts' values (ES-4) are :func:`check_completion`'s to judge, so that ``False``
    here really means "not a completion" (type checkers narrow on it).
    """
    return _shape_problem(item) is None


def check_item(item: object, *, completion_seen: bool = False) -> StreamProtocolError | None:
    """Whether ``item`` may be yielded next by an engine stream.

    :param completion_seen: whether the stream already yielded a completion (then nothing may follow,
        ES-3).
    :returns: ``None`` when the item is allowed, else the error naming the broken requirement.
    """
    if completion_seen:
        if isinstance(item, str):
            what = f"the token {item!r}"
        elif _shape_problem(item) is None:
            what = "a second completion"
        else:
            what = describe_item(item)
        return StreamProtocolError(
            "ES-3",
            f"yielded {what} after the completion; expected the completion to be the last item",
            item=item,
        )
    if isinstance(item, str):
        return None
    if isinstance(item, BaseException):
        return StreamProtocolError(
            "ES-2",
            f"yielded the exception {describe_item(item)}; expected errors to be raised, not yielded",
            item=item,
        )
    return check_completion(item)


def check_stream(stream: object) -> StreamProtocolError | None:
    """Whether ``stream`` (what ``Engine.stream()`` returned) is an async iterable (ES-1)."""
    if callable(getattr(type(stream), "__aiter__", None)):  # `async for` looks on the type, not the instance
        return None
    hint = ""
    if hasattr(stream, "__await__"):
        hint = " (a coroutine: is stream() an `async def` that returns instead of yielding?)"
    elif hasattr(stream, "__iter__"):
        hint = " (a synchronous iterable: use `async def` with `yield`)"
    return StreamProtocolError(
        "ES-1",
        f"stream() returned {describe_item(stream)}{hint}; expected an async iterable (an object with "
        "__aiter__, such as an async generator)",
        item=stream,
    )
