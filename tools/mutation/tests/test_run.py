"""Running mutants: each in a copy of its own that shadows the installed reference, each bounded, the suite's
verdict read from its report; and the fixed sample CI runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tools.mutation import reference_mutants
from tools.mutation.ledger import read_ledger
from tools.mutation.mutants import REFERENCE_DIR, Mutant
from tools.mutation.report import render, summarise
from tools.mutation.run import Verdict, bound_for, copy_package, run_mutant, run_mutants, run_suite, sample

CI_SAMPLE = 30
"""How many mutants ``make test`` runs through the suite (about 30 s on 2 cores; the whole run is
``make mutation``)."""


def _mutant(text: str) -> Mutant:
    (found,) = [m for m in reference_mutants() if m.id == text]
    return found


def test_a_copy_on_pythonpath_shadows_the_installed_reference() -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        copy_package(root, None)
        (root / "lmstream" / "reference" / "__init__.py").write_text(
            "SHADOW = 'the copy'\n", encoding="utf-8"
        )
        code = "import lmstream.reference as r, lmstream.spec as s; print(r.SHADOW, s.__file__, sep='|')"
        ran = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    shown, spec = ran.stdout.strip().split("|")
    assert shown == "the copy"
    assert Path(spec).is_relative_to(REFERENCE_DIR.parents[3])  # the spec is still the installed one


def test_a_mutant_the_suite_catches_is_killed_naming_the_failed_checks() -> None:
    mutant = _mutant("manager.py::StreamManager.__aiter__::condition::self._claimed => not self._claimed")
    verdict = run_mutant(mutant, bound=60.0)
    assert isinstance(verdict, Verdict)
    assert verdict.outcome == "killed", verdict
    (run,) = verdict.runs  # the manager suite killed it: the round suite was not run
    assert run.kind == "manager" and run.exit_code == 1
    assert "SM-1 tokens_pass_through_unchanged" in run.failed
    assert verdict.describe().startswith("manager: SM-1 tokens_pass_through_unchanged, ")


def test_a_suite_still_running_at_the_bound_is_killed_with_its_process_group() -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        copy_package(root, None)
        run = run_suite("manager", root, 0.05)
    assert run.exit_code is None and not run.passed
    assert run.describe().startswith("manager: still running at the bound, killed after ")


def test_the_bound_grows_with_the_reference_and_has_a_floor() -> None:
    assert bound_for(0.1) == 10.0
    assert bound_for(2.0) == 30.0


def test_the_sample_is_fixed_and_spread_over_the_files() -> None:
    every = reference_mutants()
    chosen = sample(every, CI_SAMPLE)
    assert len(chosen) == CI_SAMPLE and chosen == sample(every, CI_SAMPLE)
    assert chosen == [m for m in every if m in chosen]  # in source order
    assert len({m.operator for m in chosen}) >= 5


@pytest.mark.timeout(150)
def test_the_ci_sample_of_mutants_is_all_killed_or_listed() -> None:
    """``make test`` runs this fixed sample; ``make mutation`` runs every mutant. A survivor that is not in
    equivalent.txt, a listed mutant the suite kills, or an entry that names no mutant fails it."""
    every = reference_mutants()
    chosen = sample(every, CI_SAMPLE)
    verdicts = run_mutants(chosen, jobs=2, bound=30.0)
    summary = summarise(verdicts, read_ledger(), (m.id for m in every))
    assert summary.ok, render(summary, header=f"the CI sample of {CI_SAMPLE} mutants")
