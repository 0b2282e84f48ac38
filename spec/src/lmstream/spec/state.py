"""The lifecycle of a stream manager: its states and the only moves between them.

A manager that offers :attr:`~lmstream.spec.StoppableStreamManager.state` reports one of the
:class:`StreamState` values at every moment, and the value only ever moves along
:data:`STATE_TRANSITIONS` (requirement SM-27). The docs draw the lifecycle diagram from the same table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["STATE_TRANSITIONS", "TERMINAL_STATES", "StreamState", "is_allowed_transition"]


class StreamState(str, enum.Enum):
    """Where a manager's stream stands. The values are stable strings, safe to log or serialise."""

    PENDING = "pending"
    """Nothing has been requested from the engine yet."""
    STREAMING = "streaming"
    """Iteration has begun (waiting for the lock, reading the engine, or running ``after``)."""
    COMPLETED = "completed"
    """The engine stream ended normally and ``after`` (if any) returned: the result is available."""
    FAILED = "failed"
    """The engine raised, broke the stream contract, or ``after`` raised: results raise that error."""
    INCOMPLETE = "incomplete"
    """The consumer stopped early (break, its iterator's ``aclose()``, a loop error) or was cancelled."""
    STOPPED = "stopped"
    """The manager's own ``aclose()`` stopped the stream before it ended."""

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """Whether no further transition is possible from this state."""
        return self in TERMINAL_STATES


TERMINAL_STATES: Final[frozenset[StreamState]] = frozenset(
    {StreamState.COMPLETED, StreamState.FAILED, StreamState.INCOMPLETE, StreamState.STOPPED}
)
"""The states a stream ends in. Once in one, ``state`` never changes again."""

STATE_TRANSITIONS: Final[Mapping[StreamState, frozenset[StreamState]]] = MappingProxyType(
    {
        # A consumer that creates the iterator and closes it before requesting anything ends INCOMPLETE.
        StreamState.PENDING: frozenset({StreamState.STREAMING, StreamState.STOPPED, StreamState.INCOMPLETE}),
        StreamState.STREAMING: frozenset(
            {StreamState.COMPLETED, StreamState.FAILED, StreamState.INCOMPLETE, StreamState.STOPPED}
        ),
        StreamState.COMPLETED: frozenset(),
        StreamState.FAILED: frozenset(),
        StreamState.INCOMPLETE: frozenset(),
        StreamState.STOPPED: frozenset(),
    }
)
"""Every allowed move, as ``{from: {to, ...}}``. Staying in the same state is not a transition."""


def is_allowed_transition(before: StreamState, after: StreamState) -> bool:
    """Whether ``state`` may be observed as ``before`` and later as ``after`` (equal states included).

    This is the reflexive-transitive closure of :data:`STATE_TRANSITIONS`: an observer that samples
    ``state`` now and then may miss intermediate states, so ``PENDING`` then ``COMPLETED`` is allowed.
    """
    if before == after:
        return True
    seen: set[StreamState] = set()
    frontier = [before]
    while frontier:
        for nxt in STATE_TRANSITIONS[frontier.pop()]:
            if nxt == after:
                return True
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return False
