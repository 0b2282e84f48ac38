"""Shared fixtures of the conformance suite's own tests.

Test modules import their helpers relatively (``from ._engines import ...``): with ``--import-mode=importlib``
pytest imports ``conformance/tests`` as the namespace package ``conformance.tests``, which is also the name
mypy gives it, and the name reproduction snippets import broken engines by.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _frozen_heap() -> Iterator[None]:
    """Move what exists before these tests (kani, its providers' SDKs, pydantic: a large heap) out of the
    collector's sight. Otherwise a full collection takes 0.1-0.2 s, and one that lands inside a check's
    step is reported by the check's debug-mode loop as a slow callback, a note the conforming managers'
    tests reject, though it says nothing about the manager. (reference/tests does the same.)"""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Reports link the local spec page (lmstream.conformance.links): written under a cache of the
    session's own, not the user's, whatever LMSTREAM_DOCS_BASE the environment sets. Worker processes
    inherit both variables."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        patch.delenv("LMSTREAM_DOCS_BASE", raising=False)
        yield


@pytest.fixture
def no_new_threads() -> Iterator[None]:
    """Fail the test if a thread started during it is still running at its end."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"threads left running: {left}"
