"""Fixtures of the reference manager's tests.

Every test runs with the loop guard: asyncio debug mode on, the event loop's exception handler recording what
asyncio reports (a task destroyed while pending, an exception never retrieved, an error in an async
generator's finalizer), and at the end a check that nothing was reported and no task is left running.
pytest's ``filterwarnings = error`` already turns every warning (a never-awaited coroutine included) into a
failure.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator

import pytest

from ._harness import LoopGuard


@pytest.fixture(scope="session", autouse=True)
def _frozen_heap() -> Iterator[None]:
    """Move what exists before these tests (the imported libraries) out of the collector's sight, so that
    the loop guard's ``gc.collect()`` after every test looks only at what the tests made: milliseconds
    instead of tens of them, for the same reports."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
async def loop_guard() -> AsyncIterator[LoopGuard]:
    """Debug mode on and the loop's reports recorded; at the end, nothing reported and no task left."""
    guard = LoopGuard(asyncio.get_running_loop())
    baseline = asyncio.all_tasks()
    yield guard
    await guard.finish(baseline)
