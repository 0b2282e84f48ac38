"""What a mutation run found: the score per file, each survivor, and what is wrong with the list.

:func:`summarise` judges verdicts against the committed list (:mod:`tools.mutation.ledger`): a survivor not
listed, a listed mutant the suite killed, and a listed ID that names no mutant any more are *problems*,
and a run with a problem fails. The *score* of a file is the share of its mutants the suite killed, among
those not listed as equivalent or as Python 3.10's (``killed / (mutants - equivalent - py3.10)``): a
survivor listed as ``unspecified`` still counts against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .ledger import Entry
from .run import Verdict

__all__ = ["RESULTS", "FileScore", "Summary", "render", "results_json", "summarise"]

RESULTS: Final = Path(__file__).resolve().parent / "results.json"
"""The committed results of the last full run (``make mutation`` writes it; the docs publish it)."""


@dataclass
class FileScore:
    """The counts of one file (or of all of them)."""

    mutants: int = 0
    killed: int = 0
    timeouts: int = 0
    """Of ``killed``: those killed by timeout."""
    survived: int = 0
    equivalent: int = 0
    """Of ``survived``: those listed as equivalent."""
    py310: int = 0
    """Of ``survived``: those listed as run by Python 3.10 only."""
    unspecified: int = 0
    """Of ``survived``: those listed as changing what no rule governs (they count against the score)."""

    @property
    def judged(self) -> int:
        """The mutants the score is over: all but the survivors listed as equivalent or Python 3.10's."""
        return self.mutants - self.equivalent - self.py310

    @property
    def score(self) -> float:
        return self.killed / self.judged if self.judged else 1.0

    def add(self, verdict: Verdict, entry: Entry | None) -> None:
        self.mutants += 1
        if verdict.outcome == "survived":
            self.survived += 1
            if entry is not None and entry.kind == "equivalent":
                self.equivalent += 1
            elif entry is not None and entry.kind == "py3.10":
                self.py310 += 1
            elif entry is not None:
                self.unspecified += 1
        else:
            self.killed += 1
            self.timeouts += verdict.outcome == "timeout"


@dataclass
class Summary:
    """A judged run."""

    files: dict[str, FileScore] = field(default_factory=dict[str, FileScore])
    total: FileScore = field(default_factory=FileScore)
    survivors: list[tuple[Verdict, Entry | None]] = field(default_factory=list[tuple[Verdict, Entry | None]])
    timeouts: list[Verdict] = field(default_factory=list[Verdict])
    problems: list[str] = field(default_factory=list[str])

    @property
    def ok(self) -> bool:
        return not self.problems


def summarise(verdicts: Sequence[Verdict], ledger: Mapping[str, Entry], every_id: Iterable[str]) -> Summary:
    """Judge ``verdicts`` against ``ledger`` (a sample judges the listed mutants it ran, and every entry's
    staleness).

    :param every_id: the IDs of every mutant there is now (stale entries are those not among them).
    """
    summary = Summary()
    existing = set(every_id)
    for verdict in verdicts:
        mutant = verdict.mutant
        entry = ledger.get(mutant.id)
        summary.files.setdefault(mutant.file, FileScore()).add(verdict, entry)
        summary.total.add(verdict, entry)
        if verdict.outcome == "survived":
            summary.survivors.append((verdict, entry))
            if entry is None:
                summary.problems.append(f"survived, not listed: {mutant.file}:{mutant.line} {mutant.id}")
        else:
            if verdict.outcome == "timeout":
                summary.timeouts.append(verdict)
            if entry is not None:
                summary.problems.append(
                    f"listed as {entry.kind} (equivalent.txt:{entry.line}) but killed: {mutant.id} "
                    f"[{verdict.describe()}]"
                )
    for mutant_id, entry in ledger.items():
        if mutant_id not in existing:
            summary.problems.append(
                f"equivalent.txt:{entry.line} names no mutant of today's reference (the code changed: "
                f"look again and update the entry): {mutant_id}"
            )
    return summary


def render(summary: Summary, *, header: str) -> str:
    """The report ``make mutation`` prints: a table per file, the survivors, the timeouts, the problems."""
    lines = [header, ""]
    columns = ("file", "mutants", "killed", "by timeout", "survived", "equivalent", "py3.10", "unspecified")
    lines.append(f"{columns[0]:<12}" + "".join(f"{c:>12}" for c in columns[1:]) + f"{'score':>9}")
    for name, score in [*summary.files.items(), ("total", summary.total)]:
        lines.append(
            f"{name:<12}{score.mutants:>12}{score.killed:>12}{score.timeouts:>12}{score.survived:>12}"
            f"{score.equivalent:>12}{score.py310:>12}{score.unspecified:>12}{score.score:>9.1%}"
        )
    if summary.survivors:
        lines += ["", "survivors:"]
        for verdict, entry in summary.survivors:
            mutant = verdict.mutant
            why = f"{entry.kind}: {entry.reason}" if entry is not None else "NOT LISTED: the suite misses it"
            lines.append(f"  {mutant.file}:{mutant.line} {mutant.id}\n      {why}")
    if summary.timeouts:
        lines += ["", "killed by timeout (the suites had not finished within the bound):"]
        lines += [f"  {v.mutant.file}:{v.mutant.line} {v.mutant.id}" for v in summary.timeouts]
    if summary.problems:
        lines += ["", f"{len(summary.problems)} problem(s):"] + [f"  {p}" for p in summary.problems]
    return "\n".join(lines)


def results_json(summary: Summary, *, meta: Mapping[str, Any]) -> str:
    """The committed results: ``meta`` (how the run was made), the counts, survivors and timeouts by ID."""

    def counts(score: FileScore) -> dict[str, Any]:
        return {
            "mutants": score.mutants,
            "killed": score.killed,
            "timeouts": score.timeouts,
            "survived": score.survived,
            "equivalent": score.equivalent,
            "py310": score.py310,
            "unspecified": score.unspecified,
            "score": round(score.score, 4),
        }

    data = {
        **meta,
        "files": {name: counts(score) for name, score in summary.files.items()},
        "total": counts(summary.total),
        "survivors": [
            {"id": v.mutant.id, "listed": e.kind if e is not None else None} for v, e in summary.survivors
        ],
        "timeouts": [v.mutant.id for v in summary.timeouts],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
