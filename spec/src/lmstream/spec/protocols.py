"""The structural types of the lmstream contract.

Every type here is a :class:`typing.Protocol`: nothing needs to inherit from it. kani's ``ChatMessage``,
``Completion`` and engines, plain (frozen) dataclasses and hand-written classes all conform by shape.

Static checking (mypy, pyright) verifies member names *and* signatures. Runtime checking with
``isinstance`` (where a Protocol is ``runtime_checkable``) verifies only that each member *exists*:

* it does not look at signatures, return types, or whether a method is a coroutine function;
* on Python 3.10 and 3.11 it evaluates properties while looking (``hasattr``): a property that raises
  ``AttributeError`` makes ``isinstance`` false, and any other exception propagates out of ``isinstance``;
  from 3.12 on it does not call them;
* it never verifies behaviour. Behaviour is the job of :mod:`lmstream.conformance`.

The generic Protocols take the completion type as a parameter; write ``Engine[Completion]`` for "any
engine". The type variables deliberately have no default: pyright (1.1.4xx) caches a failed match against
a Protocol whose type variable has a default and then rejects later, valid implementations in the same
run (see ``spec/tests/typing/README.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Protocol, runtime_checkable

from typing_extensions import TypeVar

from .state import StreamState

__all__ = [
    "Completion",
    "CompletionT",
    "CompletionT_co",
    "Engine",
    "EngineStream",
    "ManagerFactory",
    "Message",
    "RoundStreamFactory",
    "StoppableStreamManager",
    "StreamManager",
]


@runtime_checkable
class Message(Protocol):
    """What a manager needs of a message: who said it and its text. Both read-only.

    ``role`` is deliberately ``object``: kani uses its ``ChatRole`` enum, other frameworks use ``str``.
    ``text`` is ``None`` for a message with no text (e.g. a bare tool call).
    """

    @property
    def role(self) -> object:
        """Who said the message (a ``str``, an enum member, ...)."""
        ...

    @property
    def text(self) -> str | None:
        """The message's text, or ``None`` when it has none."""
        ...


@runtime_checkable
class Completion(Protocol):
    """The final result of one engine call: the message and, where known, its token counts."""

    @property
    def message(self) -> Message:
        """The message the engine produced."""
        ...

    @property
    def prompt_tokens(self) -> int | None:
        """Tokens in the prompt, or ``None`` when unknown (ES-4: otherwise a non-negative ``int``)."""
        ...

    @property
    def completion_tokens(self) -> int | None:
        """Tokens in the completion, or ``None`` when unknown (ES-4: otherwise a non-negative ``int``)."""
        ...


CompletionT_co = TypeVar("CompletionT_co", bound=Completion, covariant=True)
"""The completion type an engine yields or a manager returns (read-only positions)."""

CompletionT = TypeVar("CompletionT", bound=Completion)
"""The completion type of a manager factory (appears in both argument and result)."""


@runtime_checkable
class EngineStream(Protocol[CompletionT_co]):
    """What an engine's ``stream()`` returns: an async iterable of tokens (``str``), optionally closed by
    one completion (ES-1 to ES-11). Any ``AsyncIterable[str | C]``, an async generator included, conforms.

    The iterator it gives MUST offer ``aclose()``, as an async generator does, and closing it MUST run the
    stream's cleanup (ES-5); that is checked at run time by the conformance suite, not here, because kani
    annotates its streams as plain ``AsyncIterable``.
    """

    def __aiter__(self) -> AsyncIterator[str | CompletionT_co]:
        """Begin the stream."""
        ...


@runtime_checkable
class Engine(Protocol[CompletionT_co]):
    """An LM engine that can stream: kani's ``BaseEngine.stream`` shape.

    ``messages`` and ``functions`` are typed ``Any`` so that every framework's message and function
    types conform (a Protocol parameter must accept whatever the implementation accepts).
    """

    # The return type is spelled AsyncIterable, not EngineStream (the same shape): pyright caches a failed
    # match of AsyncIterator against a Protocol whose type variable has a bound or a default, and then
    # rejects every later, valid async-generator engine in the run (spec/tests/typing/README.md).
    def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterable[str | CompletionT_co]:
        """Return a new, independent stream of the reply to ``messages`` (ES-1, ES-7): an
        :class:`EngineStream`."""
        ...


@runtime_checkable
class StreamManager(Protocol[CompletionT_co]):
    """What an application consumes: ``async for token in stream``, then ``await stream.message()``,
    ``await stream.completion()`` or ``await stream`` (SM-1 to SM-17).

    Generic in the completion type: a manager over an engine whose completion is ``C`` returns ``C``
    from :meth:`completion`.
    """

    @property
    def role(self) -> object:
        """The role the manager was built with (SM-16)."""
        ...

    def __aiter__(self) -> AsyncIterator[str]:
        """Iterate over the engine's tokens, once (SM-1, SM-2, SM-3)."""
        ...

    def completion(self) -> Awaitable[CompletionT_co]:
        """The final completion, consuming the stream first if nobody has (SM-4, SM-6, SM-7)."""
        ...

    def message(self) -> Awaitable[Message]:
        """``completion().message`` (SM-5)."""
        ...

    def __await__(self) -> Generator[Any, Any, Message]:
        """Awaiting the manager is awaiting :meth:`message` (SM-5)."""
        ...


@runtime_checkable
class StoppableStreamManager(StreamManager[CompletionT_co], Protocol[CompletionT_co]):
    """A manager that can be stopped from any task and reports where it stands (SM-21 to SM-29).

    An extension of :class:`StreamManager`: a manager without ``aclose()`` still satisfies the base
    Protocol, and fails only the SHOULD SM-21.
    """

    @property
    def state(self) -> StreamState:
        """Where the stream stands now; it only moves along :data:`~lmstream.spec.STATE_TRANSITIONS`."""
        ...

    def aclose(self) -> Awaitable[None]:
        """Stop the stream from any task, at any time, any number of times; return once it is stopped."""
        ...


class ManagerFactory(Protocol[CompletionT]):
    """Builds a manager over an engine stream: kani's ``StreamManager`` constructor signature.

    Not ``runtime_checkable``: ``isinstance`` could only check that the object is callable, which every
    class is. Use ``lmstream check manager`` to verify a factory.
    """

    def __call__(
        self,
        stream_iter: AsyncIterable[str | CompletionT],
        role: Any,
        *,
        after: Callable[[CompletionT], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
    ) -> StreamManager[CompletionT]:
        """Wrap ``stream_iter``; hold ``lock`` while streaming; await ``after(completion)`` at the end."""
        ...


class RoundStreamFactory(Protocol[CompletionT]):
    """Produces a round stream: one manager per message of a function-calling round (SM-18 to SM-20).

    kani's ``Kani.full_round_stream`` is the model. ``next_step`` is called with the completion of the
    previous step (``None`` before the first) and returns the next step: an engine stream to wrap in a
    manager with ``role``, an already finished message (wrapped as SM-17 says), or ``None`` to end the
    round. The round stream calls it only after the previous manager's stream has ended (SM-18).
    """

    def __call__(
        self,
        next_step: Callable[
            [CompletionT | None], Awaitable[AsyncIterable[str | CompletionT] | Message | None]
        ],
        role: Any,
    ) -> AsyncIterator[StreamManager[CompletionT]]:
        """Return the round's async iterator of managers."""
        ...
