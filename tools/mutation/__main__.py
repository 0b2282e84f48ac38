"""``python -m tools.mutation``: run the reference's mutants through the conformance suite.

::

    python -m tools.mutation                 # every mutant, 2 at a time (make mutation)
    python -m tools.mutation --write         # ... and write tools/mutation/results.json (the docs publish it)
    python -m tools.mutation --sample 30     # the fixed sample CI runs
    python -m tools.mutation --file rounds.py --match enum
    python -m tools.mutation --list          # the mutants' IDs, without running them
    python -m tools.mutation --show ID       # one mutant as a diff

Exit status: 0 when every survivor is listed in ``equivalent.txt`` and the list is right; 1 when a
survivor is not listed, a listed mutant was killed, or an entry names no mutant; 2 for bad usage or a
reference that fails the suite unmutated.
"""

from __future__ import annotations

import argparse
import difflib
import platform
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .ledger import LedgerError, read_ledger
from .mutants import MUTATED_FILES, REFERENCE_DIR, Mutant, reference_mutants
from .report import RESULTS, render, results_json, summarise
from .run import SUITES, Verdict, baseline, bound_for, run_mutants, sample, source_digest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.mutation", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--sample", type=int, metavar="N", help="run the fixed sample of N mutants")
    parser.add_argument("--file", action="append", choices=MUTATED_FILES, help="only this file's mutants")
    parser.add_argument("--match", metavar="TEXT", help="only mutants whose ID contains TEXT")
    parser.add_argument("--ids", type=Path, metavar="PATH", help="only the mutants whose IDs PATH lists")
    parser.add_argument(
        "--bound", type=float, metavar="SECONDS", help="each mutant's bound (default: measured)"
    )
    parser.add_argument(
        "--suite",
        type=Path,
        metavar="DIR",
        help="run DIR/lmstream/conformance instead of the installed suite",
    )
    parser.add_argument("--write", action="store_true", help="write the results the docs publish")
    parser.add_argument("--list", action="store_true", help="print the mutants' IDs and stop")
    parser.add_argument("--show", metavar="ID", help="print one mutant as a diff and stop")
    return parser


def _show(mutant: Mutant) -> str:
    path = REFERENCE_DIR / mutant.file
    source = path.read_text(encoding="utf-8")
    diff = difflib.unified_diff(
        source.splitlines(keepends=True),
        mutant.apply(source).splitlines(keepends=True),
        f"a/{mutant.file}",
        f"b/{mutant.file}",
    )
    return f"{mutant.id}\n" + "".join(diff)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    every = reference_mutants()
    listed = _listed_ids(args.ids) if args.ids is not None else None
    chosen = [
        m
        for m in every
        if (not args.file or m.file in args.file)
        and (not args.match or args.match in m.id)
        and (listed is None or m.id in listed)
    ]
    if args.list:
        print("\n".join(f"{m.file}:{m.line} {m.id}" for m in chosen))
        return 0
    if args.show is not None:
        found = [m for m in every if m.id == args.show]
        if not found:
            print(f"no mutant has the ID {args.show!r} (see --list)", file=sys.stderr)
            return 2
        print(_show(found[0]), end="")
        return 0
    if args.sample is not None:
        chosen = sample(chosen, args.sample)
    if args.write and (len(chosen) != len(every) or args.suite is not None):
        print(
            "--write needs every mutant and the installed suite: "
            "no --sample, --file, --match, --ids or --suite",
            file=sys.stderr,
        )
        return 2
    try:
        ledger = read_ledger()
    except LedgerError as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        reference_seconds = baseline(suite=args.suite)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    bound = bound_for(reference_seconds) if args.bound is None else args.bound
    print(
        f"{len(chosen)} mutant(s) of {', '.join(MUTATED_FILES)}, {args.jobs} at a time, each bounded at "
        f"{bound:.0f} s (the unmutated reference took {reference_seconds:.1f} s)",
        file=sys.stderr,
    )
    verdicts = run_mutants(
        chosen, jobs=args.jobs, bound=bound, suite=args.suite, progress=_Progress(len(chosen))
    )
    seconds = time.monotonic() - started
    summary = summarise(verdicts, ledger, (m.id for m in every))
    header = (
        f"mutation: {len(chosen)} mutant(s) through lmstream check {' + '.join(SUITES)} in {seconds:.0f} s "
        f"({args.jobs} at a time, each bounded at {bound:.0f} s), Python {platform.python_version()}"
    )
    print(render(summary, header=header))
    if args.write:
        meta = {
            "python": platform.python_version(),
            "jobs": args.jobs,
            "bound": round(bound, 1),
            "seconds": round(seconds, 1),
            "digest": source_digest(MUTATED_FILES),
        }
        RESULTS.write_text(results_json(summary, meta=meta), encoding="utf-8")
        print(f"wrote {RESULTS}", file=sys.stderr)
    return 0 if summary.ok else 1


def _listed_ids(path: Path) -> set[str]:
    """The IDs a file lists, one a line: bare, or as ``--list`` and the report print them (``file:N ID``)."""
    found: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        first, _, rest = text.partition(" ")
        name, colon, number = first.partition(":")
        found.add(rest if name.endswith(".py") and colon and number.isdigit() else text)
    return found


class _Progress:
    """Prints one dot per mutant (``S`` for a survivor, ``T`` for a timeout) on stderr, 50 a line."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0
        self._lock = threading.Lock()

    def __call__(self, verdict: Verdict) -> None:
        mark = {"killed": ".", "timeout": "T", "survived": "S"}[verdict.outcome]
        with self._lock:
            self._done += 1
            end = (
                f" {self._done}/{self._total}\n" if self._done % 50 == 0 or self._done == self._total else ""
            )
            print(mark, end=end, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
