"""Benchmark of the reference stream manager: per-token cost and memory, as ratios measured in one run.

Run with ``make bench`` (or ``python reference/bench/bench_manager.py [--quick]``). Everything is a ratio
to a baseline measured in the same process, interleaved, because machines here are shared and noisy:

* **per-token cost** of ``async for`` through a manager, divided by a bare ``async for`` over the same
  engine async generator, for streams of 1, 1,000 and 1,000,000 tokens; kani's manager in the same run.
  Targets (issue 3): at most 1.8x the bare loop, at most 0.7x kani's manager.
* **the floor**: a pass-through async generator (``async for item in engine: yield item``) is the least
  any manager can cost that sees each item in Python before the consumer does (and SM-9 requires that:
  a bad item must never reach the consumer). ``write+yield`` adds the one operation the reference's hot
  path performs (``StringIO.write`` accumulates the text and rejects non-``str`` items), i.e. the
  reference manager with every other feature (stop, state, waiters, lock, after) taken away.
* **with a stop**: the same streams, stopped by the consumer from its loop body at the last token
  (``await stream.aclose()``, after which the loop ends), against the floor closed the same way (the
  pass-through generator and the engine each ``aclose()``-d): what the stop machinery adds per stream,
  spread over its tokens. kani's manager has no ``aclose()``, so it has no such row. What a stop costs
  against other tasks on the loop is ``bench_stop.py``'s (``make bench`` runs both).
* **memory**: retained bytes per idle manager (tracemalloc, kani's in the same run), and the peak memory
  of a 1,000,000-token stream (consumed, then its message built) relative to the size of its text.

The engine yields pre-built tokens and does nothing else, so the ratios are the worst case: a real engine
does work per token (decoding, network), which every consumer pays equally.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import statistics
import sys
import time
import tracemalloc
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from kani.models import ChatRole
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.reference import StreamManager

Consumer = Callable[[AsyncGenerator[str, None]], AsyncIterable[Any]]


async def engine(tokens: list[str]) -> AsyncGenerator[str, None]:
    """The benchmark engine: yields the given tokens, nothing else."""
    for token in tokens:
        yield token


async def passthrough(stream: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The floor: one Python-level step per item, doing nothing."""
    async for item in stream:
        yield item


async def write_yield(stream: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The reference's hot path alone: accumulate with StringIO.write (which rejects non-str), yield."""
    write = io.StringIO().write
    async for item in stream:
        try:
            write(item)
        except (TypeError, ValueError):
            raise
        yield item


def reference_manager(stream: AsyncGenerator[str, None]) -> StreamManager[Any]:
    """The lmstream reference manager."""
    return StreamManager(stream, "assistant")


def kani_manager(stream: AsyncGenerator[str, None]) -> Any:
    """kani's manager; Any because kani annotates ``__aiter__`` as returning an ``AsyncIterable``."""
    return KaniStreamManager(stream, ChatRole.ASSISTANT)


WRAPPERS: dict[str, Consumer | None] = {
    "bare": None,
    "floor (pass-through)": passthrough,
    "write+yield": write_yield,
    "lmstream reference": reference_manager,
    "kani": kani_manager,
}


async def _consume(wrapper: Consumer | None, tokens: list[str], streams: int) -> float:
    """Seconds to iterate ``streams`` streams of ``tokens`` through ``wrapper``."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(streams):
        source = engine(tokens)
        iterable: AsyncIterable[Any] = source if wrapper is None else wrapper(source)
        async for _item in iterable:
            pass
    return time.perf_counter() - start


@dataclass
class SpeedRow:
    tokens: int
    streams: int
    seconds: dict[str, list[float]]

    def per_token_ns(self, name: str) -> float:
        return min(self.seconds[name]) / (self.tokens * self.streams) * 1e9

    def ratio(self, name: str, to: str) -> float:
        # min over repeats: the least-disturbed run of each, the usual practice for micro-benchmarks
        return min(self.seconds[name]) / min(self.seconds[to])

    def spread(self, name: str) -> float:
        values = self.seconds[name]
        return (statistics.median(values) - min(values)) / min(values)


async def _consume_stopped(wrapper: Consumer | None, tokens: list[str], streams: int) -> float:
    """Seconds to iterate ``streams`` streams of ``tokens`` through ``wrapper`` (the floor or the reference
    manager), each stopped from the loop body at its last token."""
    gc.collect()
    last = len(tokens)
    start = time.perf_counter()
    for _ in range(streams):
        source = engine(tokens)
        iterable: Any = wrapper(source) if wrapper is not None else source
        seen = 0
        async for _item in iterable:
            seen += 1
            if seen == last:
                if isinstance(iterable, StreamManager):
                    await iterable.aclose()  # the loop ends at its next step
                else:
                    await iterable.aclose()
                    await source.aclose()
                    break
    return time.perf_counter() - start


STOPPED: dict[str, Consumer | None] = {
    "floor (pass-through)": passthrough,
    "lmstream reference": reference_manager,
}


async def measure_speed(tokens: int, streams: int, repeats: int) -> SpeedRow:
    token_list = ["tok"] * tokens
    row = SpeedRow(tokens, streams, {name: [] for name in WRAPPERS})
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits every variant alike
        for name, wrapper in WRAPPERS.items():
            row.seconds[name].append(await _consume(wrapper, token_list, streams))
    return row


async def measure_stopped(tokens: int, streams: int, repeats: int) -> SpeedRow:
    token_list = ["tok"] * tokens
    row = SpeedRow(tokens, streams, {name: [] for name in STOPPED})
    for _ in range(repeats):
        for name, wrapper in STOPPED.items():
            row.seconds[name].append(await _consume_stopped(wrapper, token_list, streams))
    return row


async def idle_bytes(make: Callable[[AsyncGenerator[str, None]], object], count: int = 2000) -> float:
    """Retained bytes per manager that was built and not yet iterated (its engine stream excluded)."""
    sources = [engine([]) for _ in range(count)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    managers = [make(source) for source in sources]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del managers
    for source in sources:
        await source.aclose()
    return (after - before) / count


async def stream_peak(make: Callable[[AsyncGenerator[str, None]], Any], tokens: list[str]) -> tuple[int, int]:
    """Peak traced bytes while a stream is consumed and its message built, and the text's length."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    manager = make(engine(tokens))
    async for _item in manager:
        pass
    message = await manager.message()
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak, len(message.text)


def _print_speed(rows: list[SpeedRow]) -> None:
    print("Per-token cost of `async for` (min of interleaved repeats; ratio to the bare loop)")
    header = f"{'tokens/stream':>13} {'streams':>8}  " + "  ".join(f"{n:>22}" for n in WRAPPERS)
    print(header)
    for row in rows:
        cells = [f"{row.per_token_ns(n):7.1f} ns {row.ratio(n, 'bare'):5.2f}x" for n in WRAPPERS]
        print(f"{row.tokens:>13,} {row.streams:>8,}  " + "  ".join(f"{c:>22}" for c in cells))
    print()
    print("Targets: reference <= 1.8x bare, <= 0.7x kani; per token, reference <= 1.2x the floor")
    for row in rows:
        ours, kani = "lmstream reference", "kani"
        print(
            f"  {row.tokens:>9,} tokens: reference/bare {row.ratio(ours, 'bare'):.2f}x "
            f"(floor {row.ratio('floor (pass-through)', 'bare'):.2f}x, "
            f"write+yield {row.ratio('write+yield', 'bare'):.2f}x), "
            f"reference/kani {row.ratio(ours, kani):.2f}x, "
            f"reference/floor {row.ratio(ours, 'floor (pass-through)'):.2f}x, "
            f"noise (median-min)/min of bare {row.spread('bare'):.1%}"
        )


async def main(quick: bool) -> None:
    repeats = 3 if quick else 7
    plan = [(1, 5_000 if quick else 20_000), (1_000, 50 if quick else 300), (1_000_000, 1)]
    if quick:
        plan[-1] = (200_000, 1)
    rows = [await measure_speed(tokens, streams, repeats) for tokens, streams in plan]
    print(f"Python {sys.version.split()[0]}, {repeats} repeats\n")
    _print_speed(rows)
    stopped = [await measure_stopped(tokens, streams, repeats) for tokens, streams in plan[:2]]
    print("\nWith a stop at the last token, from the loop body (the floor closed the same way)")
    for row in stopped:
        name, floor = "lmstream reference", "floor (pass-through)"
        print(
            f"  {row.tokens:>9,} tokens x {row.streams:>6,}: reference {row.per_token_ns(name):7.1f} "
            f"ns/token, floor {row.per_token_ns(floor):7.1f} ns/token, "
            f"reference/floor {row.ratio(name, floor):.2f}x"
        )

    print("\nMemory (tracemalloc)")
    ours = await idle_bytes(reference_manager)
    kani = await idle_bytes(kani_manager)
    print(f"  retained bytes per idle manager: reference {ours:.0f}, kani {kani:.0f} ({ours / kani:.2f}x)")
    count = 200_000 if quick else 1_000_000
    tokens = [f"t{i % 7}k" for i in range(count)]  # distinct str objects, as a real engine yields
    for name, make in (
        ("reference", reference_manager),
        ("kani", kani_manager),
    ):
        peak, length = await stream_peak(make, tokens)
        ratio = peak / length
        print(f"  {count:,}-token stream, {length:,} chars: {name} peak {peak:,} bytes = {ratio:.3f}x text")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a 200,000-token stream")
    asyncio.run(main(parser.parse_args().quick))
