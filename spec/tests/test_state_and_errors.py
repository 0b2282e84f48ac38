"""The lifecycle table and the error hierarchy behave as documented."""

from __future__ import annotations

import pickle

import pytest

from lmstream.spec import (
    STATE_TRANSITIONS,
    TERMINAL_STATES,
    StreamConsumedError,
    StreamError,
    StreamIncompleteError,
    StreamProtocolError,
    StreamState,
    is_allowed_transition,
)


def test_state_values_are_the_documented_strings() -> None:
    assert [s.value for s in StreamState] == [
        "pending",
        "streaming",
        "completed",
        "failed",
        "incomplete",
        "stopped",
    ]
    assert str(StreamState.STOPPED) == "stopped" and StreamState("failed") is StreamState.FAILED


def test_transitions_only_move_forward() -> None:
    assert set(STATE_TRANSITIONS) == set(StreamState)
    for state in TERMINAL_STATES:
        assert STATE_TRANSITIONS[state] == frozenset() and state.is_terminal
    assert not StreamState.PENDING.is_terminal and not StreamState.STREAMING.is_terminal
    assert is_allowed_transition(StreamState.PENDING, StreamState.COMPLETED)  # via streaming
    assert is_allowed_transition(StreamState.PENDING, StreamState.STOPPED)
    assert is_allowed_transition(StreamState.STREAMING, StreamState.STREAMING)
    assert not is_allowed_transition(StreamState.STREAMING, StreamState.PENDING)
    assert not is_allowed_transition(StreamState.COMPLETED, StreamState.FAILED)
    assert is_allowed_transition(StreamState.PENDING, StreamState.FAILED)  # an observer may miss streaming
    assert not is_allowed_transition(StreamState.STOPPED, StreamState.STREAMING)


def test_error_hierarchy() -> None:
    for cls in (StreamProtocolError, StreamConsumedError, StreamIncompleteError):
        assert issubclass(cls, StreamError)
    assert issubclass(StreamConsumedError, RuntimeError)
    assert "consumed" in str(StreamConsumedError())


def test_protocol_error_carries_requirement() -> None:
    err = StreamProtocolError("ES-2", "yielded bytes b'x', expected str or a Completion", item=b"x")
    assert err.requirement_id == "ES-2" and err.item == b"x"
    assert str(err).startswith("ES-2: ")
    again = pickle.loads(pickle.dumps(err))
    assert again.requirement_id == "ES-2" and str(again) == str(err)


def test_incomplete_error_carries_text_and_reason() -> None:
    err = StreamIncompleteError("Hel")
    assert err.text == "Hel" and err.reason is StreamState.INCOMPLETE
    stopped = StreamIncompleteError("", StreamState.STOPPED)
    assert "aclose" in str(stopped)
    again = pickle.loads(pickle.dumps(stopped))
    assert again.reason is StreamState.STOPPED and again.text == ""
    with pytest.raises(ValueError, match="reason must be"):
        StreamIncompleteError("x", StreamState.COMPLETED)
