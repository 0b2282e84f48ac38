"""Stopping at scale (issue 13): a stop finds the step it interrupts without looking at the loop's other
tasks, wherever the step runs, and the one case that still searches them does so in slices, letting the
loop run in between. (How long a stop takes, against cancelling the consumer's task, with 0 to 10,000
other tasks, is measured by ``make bench``, never asserted here.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Generator, Iterator
from typing import Any

import pytest

from lmstream.reference import StreamManager, _cancel
from lmstream.spec import StreamState

from ._harness import Case, Consumer, CountingLock, Faults, turns

TOKENS = ["a", " b", " c", " d"]
OTHER_TASKS = 2000


@pytest.fixture
async def crowd() -> AsyncIterator[list[asyncio.Task[None]]]:
    """Many other tasks on the loop, idle, as a chat server has."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()
    loop.set_debug(False)  # debug mode records where each task was created: 0.5 s for these alone
    try:
        tasks = [loop.create_task(_idle(gate)) for _ in range(OTHER_TASKS)]
        await asyncio.sleep(0)
    finally:
        loop.set_debug(True)
    yield tasks
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def _idle(gate: asyncio.Event) -> None:
    await gate.wait()


@pytest.fixture
def no_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any look at all of the loop's tasks fails the test."""

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the stop looked at every task of the loop")

    monkeypatch.setattr(_cancel, "find_stepping_task", refuse)
    monkeypatch.setattr(asyncio, "all_tasks", refuse)


class _StepInItsOwnTask:
    """Each step of the iterator in a task of its own that the consumer awaits (as
    ``asyncio.wait_for(anext(it), t)`` does on 3.10 and 3.11), on every Python."""

    def __init__(self, it: AsyncIterator[str]) -> None:
        self._it = it

    def __aiter__(self) -> _StepInItsOwnTask:
        return self

    async def __anext__(self) -> str:
        return await asyncio.ensure_future(anext(self._it))


@pytest.mark.usefixtures("crowd", "no_search")
@pytest.mark.parametrize("where", ["engine", "lock", "own-task", "wait_for", "body", "before"])
async def test_a_stop_never_looks_at_the_loops_other_tasks(where: str) -> None:
    lock: CountingLock | bool = True
    holder: Case | None = None
    if where == "lock":
        holder = Case(["x"], faults=Faults(block_at=0), lock=True, isolated=False)
        holder.start()
        await asyncio.wait_for(holder.probe.blocked.wait(), 5)
        assert holder.lock is not None
        lock = holder.lock
    blocked = where in ("engine", "own-task", "wait_for")
    case = Case(TOKENS, faults=Faults(block_at=2) if blocked else None, lock=lock, isolated=False)
    if where in ("engine", "lock"):
        case.start()
    elif where == "own-task":
        case.start(Consumer(step_tasks=True))
    elif where == "wait_for":
        case.driven_by_consumer = False
        case.consumer_task = asyncio.ensure_future(_ignore(_wait_for_each(case.manager)))
    elif where == "body":
        case.start(Consumer(pause_at=2))
    if blocked:
        await asyncio.wait_for(case.probe.blocked.wait(), 5)
    elif where == "body":
        await asyncio.wait_for(case.paused.wait(), 5)
    else:
        await turns(3)
    await asyncio.wait_for(case.stop(), 5)
    case.resume.set()
    await case.verify(StreamState.STOPPED)
    if holder is not None:
        await holder.stop()
        await holder.verify(StreamState.STOPPED)


async def _ignore(awaitable: Awaitable[object]) -> None:
    await awaitable


async def _wait_for_each(manager: StreamManager[Any]) -> list[str]:
    """The token-timeout idiom of 3.10 and 3.11: wait_for runs each step in a task of its own there."""
    tokens: list[str] = []
    it = aiter(manager)
    while True:
        try:
            tokens.append(await asyncio.wait_for(anext(it), 60))
        except StopAsyncIteration:
            return tokens


@pytest.mark.usefixtures("crowd", "no_search")
async def test_fifty_streams_stopped_at_once_none_looks_at_the_others() -> None:
    cases = [Case(TOKENS, faults=Faults(block_at=1 + i % 3), lock=True, isolated=False) for i in range(50)]
    for case in cases:
        case.start(Consumer(step_tasks=case is cases[0]))
    for case in cases:
        await asyncio.wait_for(case.probe.blocked.wait(), 5)
    await asyncio.wait_for(asyncio.gather(*(case.stop() for case in cases)), 5)
    for case in cases:
        await case.verify(StreamState.STOPPED)


# ---------------------------------------------------------------------------------------------- the rare case
class _Opaque:
    """An awaitable whose iterator is a plain object, as some C extensions' are: a chain of awaits cannot be
    followed through it, so a stop cannot see which future the step waits on."""

    def __init__(self, future: asyncio.Future[None]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, None]:
        return _OpaqueIterator(self._future)  # type: ignore[return-value]  # an iterator, as __await__ allows


class _OpaqueIterator:
    def __init__(self, future: asyncio.Future[None]) -> None:
        self._box = [future]  # not a direct referent: what it awaits is hidden, as in a C extension

    @property
    def _future(self) -> asyncio.Future[None]:
        return self._box[0]

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: object) -> Any:
        if self._future.done():
            raise StopIteration(self._future.result())
        self._future._asyncio_future_blocking = True  # what a yielded future carries for its task
        return self._future

    def throw(self, error: BaseException, *args: object) -> Any:
        raise error


async def _opaque_engine(blocked: asyncio.Event) -> AsyncGenerator[str, None]:
    yield "a"
    blocked.set()
    await _Opaque(asyncio.get_running_loop().create_future())
    yield "b"


@pytest.mark.parametrize("own_task", [False, True], ids=["starter", "own-task"])
async def test_an_opaque_step_is_found_by_its_task_and_a_search_only_in_a_task_of_its_own(
    own_task: bool, monkeypatch: pytest.MonkeyPatch, crowd: list[asyncio.Task[None]]
) -> None:
    """Through an opaque awaitable, the future to cancel cannot be found. In the task that began the
    iteration the step is still found by following that task's chain; in a task of its own the stop
    searches the loop's tasks, yielding to the loop between slices of the search: the loop goes on."""
    searches: list[int] = []
    search = _cancel.find_stepping_task
    tasks_now = _cancel._tasks_now  # pyright: ignore[reportPrivateUsage] - the order the search meets tasks
    idle = set(crowd)

    def crowd_first() -> list[object]:
        """The registry's order is its hashes' (it is a set): the step's task could come first, and the
        search end in one slice. With the crowd first, the whole crowd is searched, as at worst."""
        return sorted(tasks_now(), key=lambda entry: _cancel._dereferenced(entry) not in idle)  # pyright: ignore[reportPrivateUsage] - as above

    monkeypatch.setattr(_cancel, "_tasks_now", crowd_first)

    async def counted(gen: object, still: Any) -> asyncio.Task[Any] | None:
        searches.append(1)
        return await search(gen, still)

    monkeypatch.setattr(_cancel, "find_stepping_task", counted)
    blocked = asyncio.Event()
    manager = StreamManager(_opaque_engine(blocked), "assistant")
    it = aiter(manager)
    consumer = asyncio.ensure_future(_drain_steps(_StepInItsOwnTask(it) if own_task else it))
    await asyncio.wait_for(blocked.wait(), 5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    before = ticks
    await asyncio.wait_for(manager.aclose(), 5)
    during = ticks - before
    ticking.cancel()
    await asyncio.wait([ticking])
    assert await asyncio.wait_for(consumer, 5) == ["a"]
    assert manager.state is StreamState.STOPPED
    assert searches == ([1] if own_task else [])
    if own_task:
        assert during > 2, f"the loop ran {during} turns during a search of {OTHER_TASKS} tasks"


async def _drain_steps(it: AsyncIterator[str]) -> list[str]:
    return [token async for token in it]
