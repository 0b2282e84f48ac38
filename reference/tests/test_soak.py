"""A randomized soak (issues 3 and 8): thousands of managers in one event loop, in concurrent batches, with
faults drawn at random positions, stops and cancellations at random moments from other tasks, shared
locks, waiters, ``after`` callbacks; every manager ends with the harness's invariant checker (the consumer
saw what the engine yielded up to the stop, and the text of StreamIncompleteError is exactly that; every
waiter resolved; the lock is free and released once per acquisition; the engine was closed; nothing left
running; the loop reported nothing).

Reproducing a failure: the message names the master seed, the batch and the scenario. Run
``LMSTREAM_SOAK_SEED=<seed> LMSTREAM_SOAK_BATCH=<batch> pytest reference/tests/test_soak.py`` to replay that
batch exactly (the event loop is deterministic), or ``LMSTREAM_SOAK_ONLY=<scenario seed>`` to run that
scenario alone. ``LMSTREAM_SOAK_MANAGERS`` changes how many managers run (default 5000).

The shutdown soak (issue 17) runs ``LMSTREAM_SOAK_SHUTDOWNS`` whole ``asyncio.run()`` lives (default 1000),
each leaving one to four streams, some sharing a lock, in random states for the loop's shutdown to deal
with (see ``_shutdown.py``), in debug mode or not, with warnings recorded or raised; every one must end
with nothing reported and everything released. ``LMSTREAM_SOAK_SHUTDOWN_ONLY=<seed>`` replays one.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from lmstream.spec import StreamProtocolError, StreamState

from ._elsewhere import asyncio_run_reporting, run_thread
from ._harness import (
    AfterError,
    AfterProbe,
    Case,
    Comp,
    Consumer,
    ConsumerError,
    ConsumerKind,
    CountingLock,
    EngineKind,
    Faults,
    HarnessFailure,
    Msg,
    RecordingManager,
    Token,
    assert_no_tasks_left,
    other_tasks,
    state_of,
)
from ._shutdown import LEFT, Leftover, judge, leave

MASTER_SEED = int(os.environ.get("LMSTREAM_SOAK_SEED", "20250608"))
MANAGERS = int(os.environ.get("LMSTREAM_SOAK_MANAGERS", "5000"))
DEBUG_MANAGERS = int(os.environ.get("LMSTREAM_SOAK_DEBUG_MANAGERS", "1000"))
SHUTDOWNS = int(os.environ.get("LMSTREAM_SOAK_SHUTDOWNS", "1000"))
BATCH = 25  # managers running concurrently in one batch
LOCKS_PER_BATCH = 3

AfterKind = Literal["none", "ok", "slow", "raise"]
_BAD: tuple[object, ...] = (b"x", None, 3, {"k": 1})


@dataclass
class Scenario:
    """One manager's script, drawn from its own seed."""

    seed: int
    kind: EngineKind
    items: list[object]
    faults: Faults
    consumer: Consumer | None  # None: the first waiter drives the stream (SM-6)
    after: AfterKind
    lock: int | None  # index of a lock shared within the batch
    waiters: int
    waiters_at: int  # event-loop turns before the waiters call
    stop_at: int | None  # turns before another task stops the stream
    cancel_at: int | None  # turns before the consumer's task is cancelled

    @classmethod
    def draw(cls, seed: int) -> Scenario:
        r = random.Random(seed)
        n = r.randint(0, 6)
        items: list[object] = [
            r.choice(["a", " b", "\n", "  ", "é", "🙂", Token(" t"), "word"]) for _ in range(n)
        ]
        if r.random() < 0.4:
            items.append(Comp(Msg("assistant", "".join(str(i) for i in items)), r.choice([None, 3]), None))
        if r.random() < 0.1:
            items.insert(r.randint(0, len(items)), r.choice(_BAD))  # ES-2
        elif r.random() < 0.05 and items and not isinstance(items[-1], str):
            items.append(r.choice(["late", Comp(Msg("assistant", "again"))]))  # ES-3
        positions = len(items) + 1  # item k, or the request that ends the stream
        faults = Faults(
            raise_at=r.randrange(positions) if r.random() < 0.15 else None,
            block_at=r.randrange(positions) if r.random() < 0.2 else None,
            cleanup_turns=r.choice([0, 0, 1, 3]),
            cleanup_raises=r.random() < 0.05,
        )
        consumer: Consumer | None = None
        if r.random() < 0.85:
            kind: ConsumerKind = r.choice(
                ["full", "full", "break", "aclose", "raise", "drop", "stop_in_body"]
            )
            at = r.randint(0 if kind == "aclose" else 1, max(1, n))
            consumer = Consumer(kind, at=at, body_turns=r.choice([0, 0, 1, 2]), step_tasks=r.random() < 0.2)
        stop_at = r.randint(0, 12) if r.random() < 0.35 or faults.block_at is not None else None
        cancel_at = r.randint(0, 12) if consumer is not None and r.random() < 0.15 else None
        return cls(
            seed=seed,
            kind=r.choice(["gen", "cls"]),
            items=items,
            faults=faults,
            consumer=consumer,
            after=r.choice(["none", "none", "ok", "slow", "raise"]),
            lock=r.randrange(LOCKS_PER_BATCH) if r.random() < 0.5 else None,
            waiters=r.choice([0, 1, 2, 3]) if consumer is not None else r.choice([1, 2, 3]),
            waiters_at=r.randint(0, 6),
            stop_at=stop_at,
            cancel_at=cancel_at,
        )


@dataclass
class Natural:
    """How the stream would end with no stop and no cancellation."""

    state: StreamState | None  # None: it blocks forever (a stop is always drawn then)
    failure: Literal["engine", "cleanup", "protocol", "after", ""] = ""
    requirement_id: str | None = None


def natural(s: Scenario) -> Natural:
    completion_seen = False
    tokens = 0
    c = s.consumer
    if c is not None and (c.kind == "drop" or (c.kind == "aclose" and c.at == 0)):
        return Natural(StreamState.INCOMPLETE)
    for index in range(len(s.items) + 1):
        if index == s.faults.block_at:
            return Natural(None)
        if index == s.faults.raise_at:
            return Natural(StreamState.FAILED, "engine")
        if index == len(s.items):
            if s.faults.cleanup_raises:
                return Natural(StreamState.FAILED, "cleanup")
            if s.after == "raise":
                return Natural(StreamState.FAILED, "after")
            return Natural(StreamState.COMPLETED)
        item = s.items[index]
        if completion_seen:
            return Natural(StreamState.FAILED, "protocol", "ES-3")
        if isinstance(item, str):
            tokens += 1
            if c is not None and c.kind != "full" and tokens == c.at:
                return Natural(StreamState.STOPPED if c.kind == "stop_in_body" else StreamState.INCOMPLETE)
        elif isinstance(item, Comp):
            completion_seen = True
        else:
            return Natural(StreamState.FAILED, "protocol", "ES-2")
    raise AssertionError("unreachable")


async def _turns_then(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def run_scenario(s: Scenario, locks: list[CountingLock], tally: Counter[str]) -> None:
    after = {
        "none": None,
        "ok": AfterProbe(),
        "slow": AfterProbe(turns=3),
        "raise": AfterProbe(error=AfterError("after failed"), turns=1),
    }[s.after]
    case = Case(
        s.items,
        kind=s.kind,
        faults=s.faults,
        lock=locks[s.lock] if s.lock is not None else False,
        after=after,
        watch=False,  # exact transitions instead of a sampling task per manager (cheaper, and stricter)
        manager_factory=RecordingManager,
        isolated=False,  # 25 run at once: the batch checks that nothing is left running
    )
    expected = natural(s)

    async def waiters_later() -> None:
        await _turns_then(s.waiters_at)
        case.spawn_waiters(s.waiters)

    async def cancel_later(turns: int) -> None:
        await _turns_then(turns)
        case.task.cancel()

    helpers: list[asyncio.Task[None]] = []
    if s.consumer is None:
        case.spawn_waiters(s.waiters)  # the first one drives the stream
    else:
        case.start(s.consumer)
        helpers.append(asyncio.ensure_future(waiters_later()))
        if s.cancel_at is not None:
            helpers.append(asyncio.ensure_future(cancel_later(s.cancel_at)))
    if s.stop_at is not None:
        case.stop_soon(turns=s.stop_at)
    await asyncio.wait_for(asyncio.gather(*helpers), 5)
    await case.finish()

    # Which endings are possible: the natural one, a stop's, a cancellation's.
    allowed = {expected.state} if expected.state is not None else set[StreamState]()
    if s.stop_at is not None:
        allowed.add(StreamState.STOPPED)
    if s.cancel_at is not None:
        allowed.add(StreamState.INCOMPLETE)
    await _wait_terminal(case)
    state = state_of(case.manager)
    if state not in allowed:
        raise HarnessFailure(f"ended {state.value}, expected one of {sorted(a.value for a in allowed)}")

    out = case.outcome
    consumer_error: type[BaseException] | None = None  # None: a clean end, or the published error (failed)
    if out.cancelled:
        if s.cancel_at is None:
            raise HarnessFailure("the consumer was cancelled, but no cancellation was drawn")
        consumer_error = asyncio.CancelledError
    elif isinstance(out.error, ConsumerError):
        if s.consumer is None or s.consumer.kind != "raise":
            raise HarnessFailure(f"the consumer raised {out.error!r}")
        consumer_error = ConsumerError

    error: BaseException | type[BaseException] | None = None
    requirement_id = None
    if state is StreamState.FAILED:
        if expected.failure == "protocol":
            error, requirement_id = StreamProtocolError, expected.requirement_id
        elif expected.failure == "after":
            assert after is not None
            error = after.error
        elif expected.failure == "engine" and s.kind == "cls":
            error = s.faults.error
        else:
            error = case.probe.raised  # the engine's error, or its cleanup's that replaced it (gen)
    after_calls = None
    if after is not None and state is StreamState.INCOMPLETE and out.cancelled:
        after_calls = len(after.calls)  # a cancellation may land while after runs (SM-11)
    await case.verify(
        state,
        error=error,
        requirement_id=requirement_id,
        consumer_error=consumer_error,
        after_calls=after_calls,
    )
    tally[state.value] += 1
    if state is StreamState.STOPPED and case.probe.started and s.consumer is not None:
        tally["stopped mid-stream"] += 1
    if out.cancelled:
        tally["consumer cancelled"] += 1


async def _wait_terminal(case: Case) -> None:
    for _ in range(50):
        if case.manager.state.is_terminal:
            return
        await asyncio.sleep(0)


async def run_batch(master: int, batch: int, seeds: list[int], tally: Counter[str]) -> None:
    locks = [CountingLock() for _ in range(LOCKS_PER_BATCH)]
    scenarios = [Scenario.draw(seed) for seed in seeds]
    baseline = other_tasks()
    results = await asyncio.gather(
        *(run_scenario(s, locks, tally) for s in scenarios), return_exceptions=True
    )
    for scenario, result in zip(scenarios, results, strict=True):
        if isinstance(result, BaseException):
            raise HarnessFailure(
                f"soak failure (LMSTREAM_SOAK_SEED={master} LMSTREAM_SOAK_BATCH={batch}, "
                f"or LMSTREAM_SOAK_ONLY={scenario.seed} alone):\n  {scenario!r}\n  {result!r}"
            ) from result
    try:
        await assert_no_tasks_left(baseline)
    except HarnessFailure as failure:
        raise HarnessFailure(f"{failure} (LMSTREAM_SOAK_SEED={master} LMSTREAM_SOAK_BATCH={batch})") from None
    for lock in locks:
        if lock.locked() or lock.acquires != lock.releases:
            raise HarnessFailure(
                f"SM-12: a shared lock ended locked={lock.locked()} acquired {lock.acquires}x released "
                f"{lock.releases}x (LMSTREAM_SOAK_SEED={master} LMSTREAM_SOAK_BATCH={batch})"
            )


async def test_soak_thousands_of_managers_with_random_faults_stops_and_cancellations() -> None:
    """The first DEBUG_MANAGERS managers run in asyncio debug mode, like every other test; the rest run with
    debug mode off, which is about four times faster and changes nothing this test checks: a task destroyed
    while pending, an exception never retrieved, an error in an async generator's finalizer and a
    never-awaited coroutine are reported in both modes (debug mode adds where they were created)."""
    loop = asyncio.get_running_loop()
    tally: Counter[str] = Counter()
    only = os.environ.get("LMSTREAM_SOAK_ONLY")
    if only is not None:
        await run_batch(MASTER_SEED, -1, [int(only)], tally)
        return
    chosen = os.environ.get("LMSTREAM_SOAK_BATCH")
    seeds = [MASTER_SEED * 1_000_000 + i for i in range(MANAGERS)]
    batches = [seeds[i : i + BATCH] for i in range(0, len(seeds), BATCH)]
    started = time.perf_counter()
    try:
        for number, batch in enumerate(batches):
            loop.set_debug(number * BATCH < DEBUG_MANAGERS)
            if chosen is None or int(chosen) == number:
                await run_batch(MASTER_SEED, number, batch, tally)
    finally:
        loop.set_debug(True)
    elapsed = time.perf_counter() - started
    in_debug = min(DEBUG_MANAGERS, MANAGERS)
    print(
        f"\nsoak: {MANAGERS} managers ({in_debug} in debug mode), {len(batches)} batches of {BATCH}, "
        f"seed {MASTER_SEED}: {elapsed:.2f}s; {dict(sorted(tally.items()))}"
    )
    if chosen is None and MANAGERS >= 1000:
        # The draw must keep exercising every ending, or the soak proves less than it claims.
        for ending in (
            "completed",
            "failed",
            "incomplete",
            "stopped",
            "stopped mid-stream",
            "consumer cancelled",
        ):
            assert tally[ending] >= MANAGERS // 100, f"only {tally[ending]} managers ended {ending}: {tally}"


# ---------------------------------------------------------------------------------------------- shutdowns
def run_shutdown(seed: int) -> Counter[str]:
    """One ``asyncio.run()`` life drawn from ``seed``: streams left in random states at its end, judged."""
    r = random.Random(seed)
    shared = CountingLock() if r.random() < 0.5 else None
    plan = [
        (
            r.choice(LEFT),
            r.choice(["gen", "cls"]),
            r.choice([0, 0, 1, 3]),
            shared
            if shared is not None and r.random() < 0.7
            else (CountingLock() if r.random() < 0.5 else None),
        )
        for _ in range(r.randint(1, 4))
    ]
    kept: list[Leftover] = []

    async def main() -> None:
        for left, kind, cleanup_turns, lock in plan:
            kept.append(await leave(left, kind, cleanup_turns, lock))  # type: ignore[arg-type]  # drawn above

    _, reports = asyncio_run_reporting(
        main, warnings_as=r.choice(["always", "error"]), debug=r.random() < 0.5
    )
    try:
        judge(kept, reports)
    except HarnessFailure as failure:
        raise HarnessFailure(
            f"shutdown soak failure (LMSTREAM_SOAK_SHUTDOWN_ONLY={seed}): {failure}"
        ) from None
    return Counter(out.left for out in kept)


def test_soak_streams_left_in_every_state_at_asyncio_run_shutdown() -> None:
    only = os.environ.get("LMSTREAM_SOAK_SHUTDOWN_ONLY")
    seeds = [int(only)] if only is not None else [MASTER_SEED * 1_000 + i for i in range(SHUTDOWNS)]
    tally: Counter[str] = Counter()
    started = time.perf_counter()

    def run_all() -> None:  # in a thread of its own: asyncio.run() needs one without a running loop
        for seed in seeds:
            tally.update(run_shutdown(seed))

    run_thread(run_all, timeout=120, name="shutdown soak")
    elapsed = time.perf_counter() - started
    print(f"\nshutdown soak: {len(seeds)} asyncio.run() lives in {elapsed:.2f}s; {dict(tally)}")
    if only is None and SHUTDOWNS >= 100:
        assert set(tally) == set(LEFT), tally  # the draw must keep leaving streams in every state
