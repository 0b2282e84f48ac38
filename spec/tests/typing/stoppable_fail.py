"""Negative cases: managers both checkers must reject as ``StoppableStreamManager`` at the marked line.

Covers a manager without ``aclose()`` and ``state`` (kani's shape; it is still a ``StreamManager``, see
stoppable_pass.py), one with ``aclose()`` but no ``state``, one whose ``aclose()`` is synchronous, and
one whose ``state`` is a plain ``str`` rather than a ``StreamState``.

Each offending line carries ``# type: ignore[<mypy code>]`` (see messages_fail.py for how that works).
"""

from __future__ import annotations

from lmstream.spec import Completion, StoppableStreamManager, StreamState

from ._shapes import PlainManager

# No ``aclose()`` and no ``state``: a StreamManager, but not a stoppable one.
not_stoppable: StoppableStreamManager[Completion] = PlainManager()  # type: ignore[assignment]  # no aclose/state


# ``aclose()`` without ``state``.
class NoStateManager(PlainManager):
    async def aclose(self) -> None:
        return None


no_state: StoppableStreamManager[Completion] = NoStateManager()  # type: ignore[assignment]  # no state


# A synchronous ``aclose()``: ``await stream.aclose()`` would fail at run time.
class SyncAcloseManager(PlainManager):
    state = StreamState.PENDING

    def aclose(self) -> None:
        return None


sync_aclose: StoppableStreamManager[Completion] = SyncAcloseManager()  # type: ignore[assignment]  # not awaitable


# ``state`` as a plain string.
class StrStateManager(PlainManager):
    state = "pending"

    async def aclose(self) -> None:
        return None


str_state: StoppableStreamManager[Completion] = StrStateManager()  # type: ignore[assignment]  # str, not StreamState
