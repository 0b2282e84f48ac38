"""Benchmark of stopping a stream (issue 13): what one ``await stream.aclose()`` costs with 0, 1,000 and
10,000 other tasks on the loop, how long it holds the loop, and how stopping M streams grows with M, each
beside its baseline measured in the same run: cancelling the consumer's task and awaiting it.

Run with ``make bench`` (or ``python reference/bench/bench_stop.py [--quick]``). Every time is the minimum
over interleaved repeats (stop, cancel, stop, ...), so that drift on a shared machine hits both alike, with
the cyclic garbage collector off while timing (as ``timeit`` does); "loop held" is the longest a ticker task
waited for its next turn during the stop (or the cancel), given as the minimum and the median over the
repeats. The stream under stop has its engine blocked awaiting its next item (an
``asyncio.Event`` nobody sets), the case a stop exists for.

Cases of one stop:

* **consumer**: ``async for token in stream`` in a task of its own (the common case);
* **step task**: each step in a task of its own, as ``asyncio.wait_for(anext(it), t)`` runs it on 3.10 and
  3.11 (done with ``asyncio.ensure_future(anext(it))``, so that every Python runs this case);
* **opaque step task**: the same, with the engine awaiting through an awaitable whose iterator hides what it
  waits on (as some C extensions' do): the one case in which a stop still searches the loop's tasks.

The other tasks are idle (awaiting an event), or each consuming a stream of its own that is blocked in its
engine ("streaming"). Only the public API is used, so the same script measures any version of the manager.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import statistics
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from lmstream.reference import StreamManager

Step = Literal["consumer", "step task", "opaque step task"]
Others = Literal["idle", "streaming"]


# ---------------------------------------------------------------------------------------------- engines
async def blocked_engine(blocked: asyncio.Event, opaque: bool = False) -> AsyncGenerator[str, None]:
    """Yields one token, then waits for a next item that never comes."""
    yield "a"
    blocked.set()
    if opaque:
        await _Opaque(asyncio.get_running_loop().create_future())
    else:
        await asyncio.Event().wait()
    yield "b"


class _Opaque:
    """An awaitable whose iterator keeps its future out of sight (in a list), as a C extension's might."""

    def __init__(self, future: asyncio.Future[None]) -> None:
        self._box = [future]

    def __await__(self) -> Generator[Any, None, None]:
        return _OpaqueIterator(self._box)  # type: ignore[return-value]  # an iterator, as __await__ allows


class _OpaqueIterator:
    def __init__(self, box: list[asyncio.Future[None]]) -> None:
        self._box = box

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: object) -> Any:
        future = self._box[0]
        if future.done():
            raise StopIteration(future.result())
        future._asyncio_future_blocking = True  # what a yielded future carries for its task
        return future

    def throw(self, error: BaseException, *args: object) -> Any:
        raise error


# ---------------------------------------------------------------------------------------------- consumers
async def consume(stream: StreamManager[Any]) -> None:
    async for _ in stream:
        pass


async def consume_in_step_tasks(stream: StreamManager[Any]) -> None:
    iterator = aiter(stream)
    while True:
        try:
            await asyncio.ensure_future(anext(iterator))
        except StopAsyncIteration:
            return


async def started(step: Step) -> tuple[StreamManager[Any], asyncio.Task[None]]:
    """A stream whose engine is blocked, consumed in a task; returned once the engine is blocked."""
    blocked = asyncio.Event()
    stream = StreamManager(blocked_engine(blocked, opaque=step == "opaque step task"), "assistant")
    run = consume if step == "consumer" else consume_in_step_tasks
    task = asyncio.get_running_loop().create_task(run(stream))
    await blocked.wait()
    return stream, task


async def stop_and_wait(stream: StreamManager[Any], task: asyncio.Task[None]) -> None:
    await stream.aclose()
    await task  # the consumer's loop ends: the stop is done for the application too


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])


# ---------------------------------------------------------------------------------------------- the loop
class Ticker:
    """A task that takes a turn on every loop iteration and remembers the longest wait between two turns."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._running = True
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        last = time.perf_counter()
        while self._running:
            await asyncio.sleep(0)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    async def stop(self) -> float:
        self._running = False
        await self._task
        return self.longest


async def timed(action: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """Seconds ``action()`` took, and the longest the loop was held meanwhile; with the cyclic garbage
    collector off, as timeit does (a collection of whatever the process holds is not the stop's cost)."""
    gc.collect()
    ticker = Ticker()
    await asyncio.sleep(0)
    ticker.longest = 0.0
    gc.disable()
    try:
        start = time.perf_counter()
        await action()
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed, await ticker.stop()


@dataclass
class Crowd:
    """``count`` other tasks on the loop, idle or each consuming a blocked stream of its own."""

    count: int
    kind: Others
    tasks: list[asyncio.Task[None]] = field(default_factory=list[asyncio.Task[None]])
    _gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Crowd:
        loop = asyncio.get_running_loop()
        if self.kind == "idle":
            self.tasks = [loop.create_task(self._idle()) for _ in range(self.count)]
        else:
            for _ in range(self.count):
                self.tasks.append((await started("consumer"))[1])
        await asyncio.sleep(0)
        return self

    async def _idle(self) -> None:
        await self._gate.wait()

    async def __aexit__(self, *exc: object) -> None:
        self._gate.set()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)


# ---------------------------------------------------------------------------------------------- one stop
@dataclass
class OneStop:
    others: int
    kind: Others
    step: Step
    stop: list[float] = field(default_factory=list[float])
    cancel: list[float] = field(default_factory=list[float])
    stop_gap: list[float] = field(default_factory=list[float])
    cancel_gap: list[float] = field(default_factory=list[float])


async def measure_one_stop(others: int, kind: Others, step: Step, repeats: int) -> OneStop:
    row = OneStop(others, kind, step)
    async with Crowd(others, kind):
        for _ in range(repeats):
            stream, task = await started(step)

            seconds, gap = await timed(functools.partial(stop_and_wait, stream, task))
            row.stop.append(seconds)
            row.stop_gap.append(gap)
            stream, task = await started(step)
            seconds, gap = await timed(functools.partial(cancel_and_wait, task))
            row.cancel.append(seconds)
            row.cancel_gap.append(gap)
            await stream.aclose()
    return row


# ---------------------------------------------------------------------------------------------- M stops
@dataclass
class ManyStops:
    streams: int
    others: int
    sequential: float = 0.0
    gathered: float = 0.0
    cancelled: float = 0.0
    gap: float = 0.0


async def measure_many_stops(streams: int, others: int) -> ManyStops:
    row = ManyStops(streams, others)
    async with Crowd(others, "idle"):
        pairs = [await started("consumer") for _ in range(streams)]

        async def one_by_one() -> None:
            for stream, _ in pairs:
                await stream.aclose()
            await asyncio.wait([task for _, task in pairs])

        row.sequential, row.gap = await timed(one_by_one)
        pairs = [await started("consumer") for _ in range(streams)]

        async def at_once() -> None:
            await asyncio.gather(*(stream.aclose() for stream, _ in pairs))
            await asyncio.wait([task for _, task in pairs])

        row.gathered, gap = await timed(at_once)
        row.gap = max(row.gap, gap)
        pairs = [await started("consumer") for _ in range(streams)]

        async def cancel_each() -> None:
            for _, task in pairs:
                await cancel_and_wait(task)

        row.cancelled, _ = await timed(cancel_each)
        for stream, _ in pairs:
            await stream.aclose()
    return row


# ---------------------------------------------------------------------------------------------- report
def _us(values: list[float]) -> str:
    return f"{min(values) * 1e6:9.1f} us"


def _held(values: list[float]) -> str:
    """min / median, in ms (the worst is the machine's noise: another process, the collector)."""
    return f"{min(values) * 1e3:5.2f} / {statistics.median(values) * 1e3:5.2f} ms"


def print_one(rows: list[OneStop]) -> None:
    print("One stop: await aclose() + the consumer's task, against task.cancel() + awaiting it")
    print(
        f"{'step':>17} {'others':>16}  {'stop':>12} {'cancel':>12} {'stop/cancel':>11}  "
        f"{'loop held: stop':>17} {'cancel':>17}"
    )
    for r in rows:
        ratio = min(r.stop) / min(r.cancel)
        print(
            f"{r.step:>17} {r.others:>7,} {r.kind:>8}  {_us(r.stop)} {_us(r.cancel)} {ratio:10.2f}x  "
            f"{_held(r.stop_gap):>17} {_held(r.cancel_gap):>17}"
        )
    common = [r for r in rows if r.step == "consumer"]
    worst = max(min(r.stop) / min(r.cancel) for r in common)
    held = max(statistics.median(r.stop_gap) for r in rows)
    print(f"Targets: stop/cancel <= 3x (worst of the consumer rows: {worst:.2f}x); no stop holds the loop")
    print(f"  > 1 ms at 10,000 tasks (worst median of all rows: {held * 1e3:.2f} ms)")


def print_many(rows: list[ManyStops]) -> None:
    print("\nStopping M streams (engines blocked): one by one, all at once (gather), against cancelling each")
    heads = f"{'one by one':>12} {'gather':>12} {'cancel each':>12}"
    print(f"{'streams':>8} {'others':>7}  {heads}  ratio  per stream")
    for r in rows:
        print(
            f"{r.streams:>8,} {r.others:>7,}  {r.sequential:10.3f} s {r.gathered:10.3f} s "
            f"{r.cancelled:10.3f} s  {r.sequential / r.cancelled:4.1f}x  "
            f"{r.sequential / r.streams * 1e6:7.1f} us"
        )
    alike = [r for r in rows if r.others == rows[0].others]
    if len(alike) >= 2 and alike[-1].streams != alike[0].streams:
        a, b = alike[0], alike[-1]
        growth = (b.sequential / a.sequential) / (b.streams / a.streams)
        print(f"Target: linear in M (time per stream, {a.streams:,} to {b.streams:,} streams: x{growth:.2f})")


async def main(quick: bool, many: list[tuple[int, int]]) -> None:
    repeats = 3 if quick else 7
    sizes = [0, 1_000, 10_000]
    rows: list[OneStop] = []
    for others in sizes:
        rows.append(await measure_one_stop(others, "idle", "consumer", repeats))
    rows.append(await measure_one_stop(1_000 if quick else 10_000, "streaming", "consumer", repeats))
    for step in ("step task", "opaque step task"):
        for others in sizes:
            rows.append(await measure_one_stop(others, "idle", step, repeats))
    print(f"Python {sys.version.split()[0]}, {repeats} repeats (times: min; loop held: min / median)\n")
    print_one(rows)
    print_many([await measure_many_stops(streams, others) for streams, others in many])
    spread = statistics.median(rows[0].stop) / min(rows[0].stop) - 1
    print(f"\nnoise: (median-min)/min of the first stop row {spread:.1%}")


def _plan(text: str) -> list[tuple[int, int]]:
    try:
        return [(int(m), int(n)) for m, n in (case.split(":") for case in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected STREAMS:OTHERS,... (e.g. 250:0,1000:10000), got {text!r}"
        ) from None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--many",
        type=_plan,
        default=[(250, 0), (1_000, 0), (1_000, 10_000)],
        help="the M-streams cases as STREAMS:OTHERS,... (default 250:0,1000:0,1000:10000)",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.quick, arguments.many))
