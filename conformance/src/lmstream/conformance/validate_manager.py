"""``validate_manager(manager)``: check a live stream manager as the application uses it.

The proxy has the manager's API (``role``, ``async for``, ``completion()``, ``message()``, ``await``, and
``aclose()`` / ``state`` when the manager has them), forwards every call, returns the manager's own
results, and raises :class:`~lmstream.spec.StreamProtocolError` naming the requirement at the first
violation it can see live:

* SM-1: iteration yields only ``str``;
* SM-5: ``message()`` is ``completion().message``, and awaiting the manager gives the same object;
* SM-7: every call of ``completion()`` (``message()``, ``await``) returns the same object;
* SM-16: ``role`` never changes from the role the manager had when it was wrapped;
* SM-27: ``state`` (when the manager has it) is always a :class:`~lmstream.spec.StreamState` and only moves
  along :data:`~lmstream.spec.STATE_TRANSITIONS` (sampled at every call through the proxy);
* SM-22: once ``aclose()`` returns, ``state`` is terminal;
* SM-28: a :class:`~lmstream.spec.StreamIncompleteError` carries exactly the text of the tokens this proxy
  handed out (when it was iterated; a stream driven by a result call is read where the proxy cannot see),
  and its ``reason`` equals the final ``state``.

Wrap the manager before anything iterates it and use only the proxy: SM-28 compares with the tokens *the
proxy* saw. Requirements about the engine side, time and other tasks (SM-2, SM-8 to SM-13, SM-15) need
scripted engines; ``lmstream check manager`` checks those.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any, Final, Generic, cast, overload

from typing_extensions import Self

from lmstream.spec import (
    CompletionT,
    Message,
    StoppableStreamManager,
    StreamIncompleteError,
    StreamManager,
    StreamProtocolError,
    StreamState,
    describe_item,
    is_allowed_transition,
)

__all__ = ["ValidatedManager", "ValidatedStoppableManager", "validate_manager"]

_UNSET: Final[Any] = object()


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # an __eq__ that raises is not equality
        return False


class ValidatedManager(Generic[CompletionT]):
    """The proxy :func:`validate_manager` returns for a manager without ``aclose()``."""

    def __init__(self, manager: StreamManager[CompletionT]) -> None:
        self._manager = manager
        self._role = manager.role
        self._tokens: list[str] = []
        self._iterated = False
        self._busy: dict[asyncio.Task[Any] | None, int] = {}  # tasks inside a call of the manager, how deep
        self._completion: CompletionT = _UNSET
        self._message: Message = _UNSET
        self._state: StreamState | None = None
        self._sample()

    # ------------------------------------------------------------------ the manager's API
    @property
    def role(self) -> object:
        """The manager's role, checked to be the one it had when wrapped (SM-16)."""
        role = self._manager.role
        if not _same(role, self._role):
            raise StreamProtocolError("SM-16", f"role changed from {self._role!r} to {role!r}", item=role)
        return role

    def __aiter__(self) -> AsyncIterator[str]:
        self._sample()
        tokens = self._manager.__aiter__()  # refused (StreamConsumedError): this proxy hands out nothing
        self._iterated = True
        return _ValidatedTokens(self, tokens)

    async def completion(self) -> CompletionT:
        """``await manager.completion()``, checked (SM-7, SM-28)."""
        try:
            with self._inside():
                completion = await self._manager.completion()
        except StreamIncompleteError as exc:
            self._check_incomplete(exc)
            raise
        finally:
            self._sample()
        self._check_completion(completion)
        return completion

    async def message(self) -> Message:
        """``await manager.message()``, checked against ``completion().message`` (SM-5, SM-7, SM-28)."""
        try:
            with self._inside():
                message = await self._manager.message()
        except StreamIncompleteError as exc:
            self._check_incomplete(exc)
            raise
        finally:
            self._sample()
        return await self._check_message(message, "message()")

    def __await__(self) -> Generator[Any, Any, Message]:
        return self._await().__await__()

    async def _await(self) -> Message:
        try:
            with self._inside():
                message = await self._manager
        except StreamIncompleteError as exc:
            self._check_incomplete(exc)
            raise
        finally:
            self._sample()
        return await self._check_message(message, "await manager")

    # ------------------------------------------------------------------ the checks
    @contextlib.contextmanager
    def _inside(self) -> Generator[None, None, None]:
        """Mark the current task as inside a call of the manager (its step may run after, or the engine)."""
        task = asyncio.current_task()
        self._busy[task] = self._busy.get(task, 0) + 1
        try:
            yield
        finally:
            if self._busy[task] == 1:
                del self._busy[task]
            else:
                self._busy[task] -= 1

    def _inside_a_call(self) -> bool:
        return asyncio.current_task() in self._busy

    def _sample(self) -> None:
        state = getattr(self._manager, "state", _UNSET)
        if state is _UNSET:
            return
        if not isinstance(state, StreamState):
            raise StreamProtocolError(
                "SM-27", f"state is {describe_item(state)}, not a StreamState", item=state
            )
        if self._state is not None and not is_allowed_transition(self._state, state):
            raise StreamProtocolError(
                "SM-27",
                f"state moved from {self._state.value} to {state.value}, which STATE_TRANSITIONS forbids",
            )
        self._state = state

    def _check_completion(self, completion: CompletionT) -> None:
        if self._completion is _UNSET:
            self._completion = completion
        elif completion is not self._completion:
            raise StreamProtocolError(
                "SM-7",
                f"completion() returned {describe_item(completion)}, not the object it returned before "
                f"({describe_item(self._completion)})",
                item=completion,
            )

    async def _check_message(self, message: Message, how: str) -> Message:
        completion = self._completion if self._completion is not _UNSET else await self._manager.completion()
        self._check_completion(completion)
        if message is not completion.message:
            raise StreamProtocolError(
                "SM-5",
                f"{how} returned {describe_item(message)}, not completion().message "
                f"({describe_item(completion.message)})",
                item=message,
            )
        if self._message is _UNSET:
            self._message = message
        return message

    def _check_incomplete(self, exc: StreamIncompleteError) -> None:
        seen = "".join(self._tokens)
        # When nobody iterated through the proxy, a result call drove the stream (SM-6) and the text is
        # what that call read, which the proxy cannot see.
        if self._iterated and exc.text != seen:
            raise StreamProtocolError(
                "SM-28",
                f"StreamIncompleteError.text is {describe_item(exc.text)}, but the consumer received "
                f"{describe_item(seen)}",
                item=exc,
            ) from exc
        state = getattr(self._manager, "state", _UNSET)
        if state is not _UNSET and exc.reason != state:
            raise StreamProtocolError(
                "SM-28",
                f"StreamIncompleteError.reason is {exc.reason} but the manager's state is {state}",
                item=exc,
            ) from exc

    def _token(self, item: object) -> str:
        if not isinstance(item, str):
            raise StreamProtocolError(
                "SM-1",
                f"iteration yielded {describe_item(item)}; a manager yields only str tokens",
                item=item,
            )
        self._tokens.append(item)
        return item


class ValidatedStoppableManager(ValidatedManager[CompletionT]):
    """The proxy :func:`validate_manager` returns for a manager with ``aclose()`` (and ``state``)."""

    def __init__(self, manager: StoppableStreamManager[CompletionT]) -> None:
        super().__init__(manager)
        self._stoppable = manager

    @property
    def state(self) -> StreamState:
        """The manager's state, checked to move only forward (SM-27)."""
        self._sample()
        return self._stoppable.state

    async def aclose(self) -> None:
        """``await manager.aclose()``; then ``state`` must be terminal (SM-22)."""
        await self._stoppable.aclose()
        self._sample()
        state = self._stoppable.state
        # A stop from inside the manager's own step (after, the engine) returns before the end (SM-22).
        if not state.is_terminal and not self._inside_a_call():
            raise StreamProtocolError(
                "SM-22", f"after aclose() returned, state is {state.value}, not a terminal state"
            )


class _ValidatedTokens:
    """The proxy's iterator: the manager's tokens, each checked to be a ``str`` (SM-1) and recorded."""

    def __init__(self, owner: ValidatedManager[Any], iterator: AsyncIterator[str]) -> None:
        self._owner = owner
        self._iterator = iterator

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        try:
            with self._owner._inside():  # pyright: ignore[reportPrivateUsage] - the proxy's own iterator
                item: object = await self._iterator.__anext__()
        finally:
            self._owner._sample()  # pyright: ignore[reportPrivateUsage] - the proxy's own iterator
        return self._owner._token(item)  # pyright: ignore[reportPrivateUsage] - the proxy's own iterator

    async def aclose(self) -> None:
        """Close the manager's iterator, when it can be closed."""
        aclose = getattr(self._iterator, "aclose", None)
        if callable(aclose):
            await cast(Any, aclose)()
        self._owner._sample()  # pyright: ignore[reportPrivateUsage] - the proxy's own iterator


@overload
def validate_manager(
    manager: StoppableStreamManager[CompletionT],
) -> ValidatedStoppableManager[CompletionT]: ...
@overload
def validate_manager(manager: StreamManager[CompletionT]) -> ValidatedManager[CompletionT]: ...
def validate_manager(manager: StreamManager[CompletionT]) -> ValidatedManager[CompletionT]:
    """Wrap a manager so that what it does live is checked (see the module docstring).

    A manager with a callable ``aclose`` gets a :class:`ValidatedStoppableManager` (with ``aclose()`` and
    ``state``); any other a :class:`ValidatedManager`.
    """
    if callable(getattr(manager, "aclose", None)) and hasattr(manager, "state"):
        return ValidatedStoppableManager(cast(StoppableStreamManager[CompletionT], manager))
    return ValidatedManager(manager)
