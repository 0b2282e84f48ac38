"""The reference at its edges (issue 17, items 4 and 5): an engine without ``aclose()`` is asked for nothing
after a stop; an engine that raises ``CancelledError`` or ``GeneratorExit`` itself ends the stream as a
cancellation or a close, as SM-8's rationale decides; and a stored engine error forms no reference cycle
with the manager, so the engine is freed as soon as the manager is.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest

from lmstream.reference import StreamManager
from lmstream.spec import StreamIncompleteError, StreamState

from ._harness import AfterProbe, Case, EngineError, Faults, turns


# ---------------------------------------------------------------------------------------------- item 4
class Unclosable:
    """An engine iterator without ``aclose()`` (it breaks ES-5): it counts the items asked of it, and
    blocks (forever) when asked for more than it has, as a provider with nothing to send yet does."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.requests = 0
        self.blocked = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        self.requests += 1
        if self.requests > len(self.tokens):
            self.blocked.set()
            await asyncio.Event().wait()
        return self.tokens[self.requests - 1]


@pytest.mark.parametrize("stopper", ["another task", "the loop body"])
async def test_sm24_after_a_stop_an_engine_without_aclose_is_asked_for_nothing_more(stopper: str) -> None:
    engine = Unclosable(["a", "b"])
    lock = asyncio.Lock()
    manager = StreamManager(engine, "assistant", lock=lock)
    paused, resume = asyncio.Event(), asyncio.Event()
    got: list[str] = []

    async def consume() -> None:
        async for token in manager:
            got.append(token)
            if stopper == "the loop body":
                await manager.aclose()
            else:
                paused.set()
                await resume.wait()

    consumer = asyncio.ensure_future(consume())
    if stopper == "another task":
        await asyncio.wait_for(paused.wait(), 5)
        await asyncio.wait_for(manager.aclose(), 5)
        resume.set()
    await asyncio.wait_for(consumer, 5)  # the provider has nothing to send: asking it would hang
    assert got == ["a"] and engine.requests == 1 and not engine.blocked.is_set()
    assert manager.state is StreamState.STOPPED and not lock.locked()


async def test_sm24_an_engine_without_aclose_blocked_on_its_next_item_is_still_interrupted() -> None:
    engine = Unclosable(["a"])
    manager = StreamManager(engine, "assistant")
    consumer = asyncio.ensure_future(_drain(manager))
    await asyncio.wait_for(engine.blocked.wait(), 5)
    await asyncio.wait_for(manager.aclose(), 5)
    assert await asyncio.wait_for(consumer, 5) == ["a"]
    assert engine.requests == 2 and manager.state is StreamState.STOPPED


async def test_an_engine_without_aclose_streams_as_any_other() -> None:
    engine = Unclosable(["a", " b"])
    engine.tokens.append("")  # ends below: the third request raises StopAsyncIteration instead

    class Ends(Unclosable):
        async def __anext__(self) -> str:
            if self.requests == 2:
                raise StopAsyncIteration
            return await super().__anext__()

    manager = StreamManager(Ends(["a", " b"]), "assistant")
    assert await asyncio.wait_for(_drain(manager), 5) == ["a", " b"]
    assert (await manager.message()).text == "a b"


# ---------------------------------------------------------------------------------------------- item 5
@pytest.mark.parametrize(
    "signal", [asyncio.CancelledError, GeneratorExit], ids=["CancelledError", "GeneratorExit"]
)
@pytest.mark.parametrize("kind", ["gen", "cls"])
async def test_sm8_an_engine_raising_a_cancellation_or_a_close_itself_ends_the_stream_incomplete(
    signal: type[BaseException], kind: Any
) -> None:
    """Nobody cancelled anything: the engine raised the exception itself. The consumer's loop gets it (it
    arose in the consumer's task); every waiter gets StreamIncompleteError, never a CancelledError in a task
    nobody cancelled (SM-8's rationale); the lock is released and the engine closed."""
    error = signal("the engine's own")
    case = Case(
        ["a", " b", " c"], kind=kind, faults=Faults(raise_at=2, error=error), lock=True, after=AfterProbe()
    )
    await case.run(waiters=3)
    await case.verify(StreamState.INCOMPLETE, consumer_error=signal, tokens=["a", " b"])
    assert case.outcome.error is error
    for waiter in case.waiters:
        raised = waiter.exception()
        assert isinstance(raised, StreamIncompleteError) and raised.reason is StreamState.INCOMPLETE


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cyclic garbage collector off: what is freed is freed by reference counting alone."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("collector_off")
@pytest.mark.parametrize("reader", ["consumer", "waiter", "both", "closing fails"])
async def test_a_stored_engine_error_forms_no_cycle_the_engine_is_freed_with_the_manager(reader: str) -> None:
    class Connection:
        """What an engine holds (a provider connection): it must not outlive the manager."""

    freed: list[str] = []

    async def engine(connection: Connection) -> AsyncGenerator[str, None]:
        try:
            yield "a"
            raise EngineError("the connection broke")
        finally:
            if reader == "closing fails":
                raise EngineError("and closing it failed too")

    connection = Connection()
    alive = weakref.ref(connection)
    stream = engine(connection)
    del connection
    manager = StreamManager(stream, "assistant", lock=asyncio.Lock())
    weakref.finalize(manager, freed.append, "manager")
    del stream
    # try/except, not pytest.raises: its ExceptionInfo keeps the error (and so the engine) alive itself.
    if reader in ("consumer", "both", "closing fails"):
        iterator = aiter(manager)
        assert await _raised(_drain_iterator(iterator)) is EngineError
        del iterator
    if reader in ("waiter", "both"):
        assert await _raised(manager.message()) is EngineError
        assert await _raised(manager.completion()) is EngineError
    assert alive() is not None  # the error (and its traceback) is kept while the manager is
    del manager
    await turns(1)
    assert freed == ["manager"] and alive() is None


async def _raised(awaitable: Awaitable[object]) -> type[BaseException] | None:
    """The type of what awaiting ``awaitable`` raised (the exception itself is not kept)."""
    try:
        await awaitable
    except Exception as exc:
        return type(exc)
    return None


async def _drain(manager: StreamManager[Any]) -> list[str]:
    return [token async for token in manager]


async def _drain_iterator(iterator: AsyncIterator[str]) -> None:
    async for _ in iterator:
        pass
