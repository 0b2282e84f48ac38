"""Positive cases: stoppable managers (``aclose()`` and ``state``, SM-21 to SM-28).

A manager with ``aclose()`` and ``state`` satisfies ``StoppableStreamManager`` and, being an extension,
``StreamManager`` too; a manager without them still satisfies ``StreamManager`` (it fails only the SHOULD
SM-21, which is a run-time check). The rejection of the latter as stoppable is in stoppable_fail.py.
"""

from __future__ import annotations

from lmstream.spec import Completion, StoppableStreamManager, StreamManager, StreamState

from ._shapes import MyCompletion, PlainManager


class StoppableManager(PlainManager):
    """``state`` as a read-only property, ``aclose()`` as a coroutine method."""

    def __init__(self) -> None:
        self._state = StreamState.PENDING

    @property
    def state(self) -> StreamState:
        return self._state

    async def aclose(self) -> None:
        self._state = StreamState.STOPPED


class AttributeStateManager(PlainManager):
    """``state`` as a plain attribute: a read-only Protocol member accepts it."""

    state: StreamState = StreamState.PENDING

    async def aclose(self) -> None:
        self.state = StreamState.STOPPED


stoppable: StoppableStreamManager[MyCompletion] = StoppableManager()
stoppable_bare: StoppableStreamManager[Completion] = StoppableManager()
attribute_state: StoppableStreamManager[MyCompletion] = AttributeStateManager()
stoppable_is_a_manager: StreamManager[MyCompletion] = stoppable  # the extension is a StreamManager
plain_is_a_manager: StreamManager[MyCompletion] = PlainManager()  # no aclose(): still a StreamManager
