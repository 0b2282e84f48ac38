"""Every target whose verdicts the baseline holds, each with the run that judges it.

The parameters are those of the suite's own tests (the timeout per check, the prompt), so that the verdicts
are the ones the tests assert; every target is run through *all* the checks of its kind, not only the ones
its test selects, so that a refactor that changes any verdict shows.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lmstream.conformance import Report, TargetKind, run_checks

ROOT: Final = Path(__file__).resolve().parents[2]
"""Where ``conformance.tests`` is importable from (the targets live there)."""


@dataclass(frozen=True)
class Target:
    """One target: its key in the baseline, its kind, the object (or ``module:attribute``), how it runs."""

    key: str
    kind: TargetKind
    obj: object
    timeout: float
    messages: object = None
    select: str | None = None

    def run(self) -> Report:
        """Run the target through its kind's checks (or the selected ones)."""
        return run_checks(
            self.kind,
            self.obj,
            timeout=self.timeout,
            messages=self.messages,  # type: ignore[arg-type]  # a prompt or a `module:attribute` name
            select=self.select,
        )


def _group(
    prefix: str, kind: TargetKind, table: dict[str, tuple[object, object]], timeout: float
) -> list[Target]:
    return [Target(f"{prefix}/{name}", kind, obj, timeout) for name, (obj, _) in table.items()]


def all_targets() -> list[Target]:
    """Every target, in a fixed order (imports the suite's test modules: run from the repository root)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from conformance.tests import _engines, _managers, _mutation_targets, _rounds, _sdk_engines, _stoppable
    from conformance.tests.test_hostile import CRASHES, HANGS, POLLUTION

    engine, manager, round_ = TargetKind.ENGINE, TargetKind.MANAGER, TargetKind.ROUND
    found: list[Target] = []
    found += _group("engines", engine, dict(_engines.BROKEN), 0.3)
    found += [
        Target("engines/good", engine, _engines.Good, 2.0),
        Target("engines/nested-closed", engine, _engines.NestedClosed, 2.0),
        Target("engines/kani-streaming", engine, _engines.KaniStreaming, 2.0, _engines.KANI_PROMPT),
        Target("engines/kani-not-streaming", engine, _engines.KaniNotStreaming, 2.0, _engines.KANI_PROMPT),
        Target("examples/EchoEngine", engine, "lmstream.conformance.examples:EchoEngine", 2.0),
        Target("examples/ScriptedEngine", engine, "lmstream.conformance.examples:ScriptedEngine", 2.0),
    ]
    found += _group("managers", manager, dict(_managers.BROKEN), 0.5)
    found.append(Target("managers/simple", manager, _managers.Simple, 2.0))
    found += _group("stoppable", manager, dict(_stoppable.BROKEN), 1.0)
    found += [
        Target("stoppable/mini", manager, _stoppable.MiniManager, 2.0),
        Target("stoppable/plain-aclose", manager, _stoppable.PlainAclose, 2.0),
    ]
    found += _group("rounds", round_, dict(_rounds.BROKEN), 0.3)
    found += _group("mutation-managers", manager, dict(_mutation_targets.MANAGERS), 1.0)
    found += _group("mutation-stoppable", manager, dict(_mutation_targets.STOPPABLE), 1.0)
    found += _group("mutation-rounds", round_, dict(_mutation_targets.ROUNDS), 1.0)
    module = "conformance.tests._hostile"
    for case in (*HANGS, *CRASHES, *POLLUTION):
        found.append(
            Target(
                f"hostile/{case.target}",
                TargetKind(case.kind),
                f"{module}:{case.target}",
                0.2,
                select=case.select,
            )
        )
    found += [
        Target("reference/StreamManager", manager, "lmstream.reference:StreamManager", 2.0),
        Target("reference/round_stream", round_, "lmstream.reference:round_stream", 2.0),
        Target("kani/StreamManager", manager, "kani.streaming:StreamManager", 1.0),
    ]
    kani_prompt = "conformance.tests._engines:KANI_PROMPT"
    for real in _sdk_engines.ENGINES:
        for suffix in ("", "_socket"):
            found.append(
                Target(
                    f"sdk/{real.name}{suffix}",
                    engine,
                    f"conformance.tests._sdk_engines:{real.name}{suffix}",
                    2.0,
                    kani_prompt if real.kani else None,
                )
            )
    for real in _sdk_engines.SOCKET_ONLY:
        found.append(
            Target(
                f"sdk/{real.name}_socket", engine, f"conformance.tests._sdk_engines:{real.name}_socket", 2.0
            )
        )
    return found


@contextlib.contextmanager
def local_server() -> Generator[None]:
    """The local SSE server the socket engines talk to, its URL in the environment (as the tests set it)."""
    from conformance.tests._replay import SERVER_ENV, LocalServer

    previous = os.environ.get(SERVER_ENV)
    with LocalServer() as running:
        os.environ[SERVER_ENV] = running.url
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(SERVER_ENV, None)
            else:
                os.environ[SERVER_ENV] = previous


Runner = Callable[[Target], Report]
