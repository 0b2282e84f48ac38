"""The one error hierarchy of lmstream: everything a manager raises of its own is a :class:`StreamError`.

Errors that come from the engine, from ``after`` or from cancellation are never wrapped: the consumer and
every waiter receive that very exception object (SM-8, SM-11, SM-13).
"""

from __future__ import annotations

from .state import StreamState

__all__ = ["StreamConsumedError", "StreamError", "StreamIncompleteError", "StreamProtocolError"]


class StreamError(Exception):
    """Base class of every error a stream manager raises on its own account."""


class StreamProtocolError(StreamError):
    """Something broke the lmstream contract: an engine (ES-2, ES-3 or ES-4, raised by a manager, SM-9), or a
    manager watched by ``lmstream.conformance.validate_manager`` (an ``SM-`` ID).

    :param requirement_id: the ID of the broken requirement, e.g. ``"ES-2"``.
    :param detail: what was observed, in one line.
    :param item: the offending item, when there was one (kept for debugging; never shown to a consumer).
    """

    requirement_id: str
    """The ID of the broken requirement, e.g. ``"ES-2"``."""
    detail: str
    """What was observed, in one line."""
    item: object
    """The offending item, or ``None``."""

    def __init__(self, requirement_id: str, detail: str, *, item: object = None) -> None:
        self.requirement_id = requirement_id
        self.detail = detail
        self.item = item
        super().__init__(f"{requirement_id}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_protocol_error, (self.requirement_id, self.detail))


def _rebuild_protocol_error(requirement_id: str, detail: str) -> StreamProtocolError:
    return StreamProtocolError(requirement_id, detail)


class StreamConsumedError(StreamError, RuntimeError):
    """A manager was iterated a second time, or after a result call already drained it (SM-3).

    Also a :class:`RuntimeError`, which is what kani's manager raises, so existing handlers keep working.
    """

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or "this stream has already been consumed; iterate it once, then use completion()/message()/await"
        )


class StreamIncompleteError(StreamError):
    """The stream ended without a completion because the consumer stopped early, was cancelled, or the
    manager was stopped with ``aclose()``.

    :param text: exactly the text handed out before the stop (the concatenation of the tokens, SM-28).
    :param reason: :attr:`StreamState.INCOMPLETE` (the consumer stopped or was cancelled) or
        :attr:`StreamState.STOPPED` (``aclose()`` on the manager).
    """

    text: str
    """Exactly the text handed out before the stop: the partial reply to save or show (SM-28)."""
    reason: StreamState
    """Why the stream ended early: :attr:`StreamState.INCOMPLETE` or :attr:`StreamState.STOPPED`."""

    def __init__(self, text: str, reason: StreamState = StreamState.INCOMPLETE) -> None:
        if reason not in (StreamState.INCOMPLETE, StreamState.STOPPED):
            raise ValueError(f"reason must be StreamState.INCOMPLETE or StreamState.STOPPED, got {reason!r}")
        self.text = text
        self.reason = reason
        how = "was stopped with aclose()" if reason is StreamState.STOPPED else "was left by its consumer"
        super().__init__(f"the stream {how} before it ended ({len(text)} characters were yielded)")

    def __reduce__(self) -> tuple[object, ...]:
        return (StreamIncompleteError, (self.text, self.reason))
