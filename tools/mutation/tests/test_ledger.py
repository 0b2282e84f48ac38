"""The list of survivors that are not the suite's fault: its format, and how a run is judged against it."""

from __future__ import annotations

import pytest

from tools.mutation.ledger import LEDGER, Entry, LedgerError, parse_ledger, read_ledger
from tools.mutation.mutants import Mutant, mutants_of
from tools.mutation.report import render, summarise
from tools.mutation.run import Outcome, SuiteRun, Verdict

SOURCE = "def f(x):\n    g(x)\n    return x > 1\n"


def _mutants() -> list[Mutant]:
    return mutants_of(SOURCE, "m.py")


def test_a_well_formed_list_is_read_by_id() -> None:
    text = (
        "# a comment, then a blank line\n\n"
        "equivalent: m.py::f::number::1 => 2 -- x is only ever 0 or 5, both sides of 1 and 2 alike\n"
        "py3.10: m.py::f::statement::g(x) => pass -- only Python 3.10 runs g\n"
    )
    entries = parse_ledger(text)
    assert entries == {
        "m.py::f::number::1 => 2": Entry(
            "equivalent", "m.py::f::number::1 => 2", "x is only ever 0 or 5, both sides of 1 and 2 alike", 3
        ),
        "m.py::f::statement::g(x) => pass": Entry(
            "py3.10", "m.py::f::statement::g(x) => pass", "only Python 3.10 runs g", 4
        ),
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "m.py::f::number::1 => 2 -- why",
            "equivalent.txt:1: a line must start with one of equivalent, py3.10, unspecified",
        ),
        ("maybe: m.py::f::number::1 => 2 -- why", "a line must start with one of"),
        ("equivalent: m.py::f::number::1 => 2", "expected 'KIND: MUTANT-ID -- why no observable behaviour"),
        ("equivalent: m.py::f::number::1 => 2 --   ", "expected 'KIND: MUTANT-ID -- why"),
    ],
)
def test_a_malformed_line_is_refused_with_its_number_and_the_format(line: str, message: str) -> None:
    with pytest.raises(LedgerError, match=r"^equivalent\.txt:1: ") as raised:
        parse_ledger(line)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_mutant_listed_twice_is_refused() -> None:
    line = "equivalent: m.py::f::number::1 => 2 -- why\n"
    with pytest.raises(LedgerError, match=r"equivalent.txt:2: .* is listed twice \(first on line 1\)"):
        parse_ledger(line * 2)


def test_the_committed_list_is_well_formed() -> None:
    assert LEDGER.exists()
    entries = read_ledger()
    assert entries and all(len(entry.reason) > 20 for entry in entries.values())


def _verdict(mutant: Mutant, outcome: Outcome) -> Verdict:
    run = SuiteRun("manager", 0 if outcome == "survived" else None if outcome == "timeout" else 1, (), 0.1)
    return Verdict(mutant, outcome, (run,), 0.1)


def test_a_run_is_judged_against_the_list() -> None:
    mutants = {m.id: m for m in _mutants()}
    listed_survivor = "m.py::f::compare::x > 1 => x <= 1"
    unlisted_survivor = "m.py::f::statement::g(x) => pass"
    listed_but_killed = "m.py::f::number::1 => 2"
    ledger = parse_ledger(
        f"equivalent: {listed_survivor} -- x is never 1\n"
        f"equivalent: {listed_but_killed} -- wrongly listed\n"
        "py3.10: m.py::gone::statement::h() => pass -- the code it named is gone\n"
    )
    verdicts = [
        _verdict(mutants[listed_survivor], "survived"),
        _verdict(mutants[unlisted_survivor], "survived"),
        _verdict(mutants[listed_but_killed], "killed"),
        _verdict(mutants["m.py::f::number::1 => 0"], "timeout"),
    ]
    summary = summarise(verdicts, ledger, mutants)
    score = summary.files["m.py"]
    assert (score.mutants, score.killed, score.timeouts, score.survived, score.equivalent) == (4, 2, 1, 2, 1)
    assert score.score == pytest.approx(2 / 3)
    assert not summary.ok
    assert [p.split(":")[0] for p in summary.problems] == [
        "survived, not listed",
        "listed as equivalent (equivalent.txt",
        "equivalent.txt",
    ]
    report = render(summary, header="header")
    assert "NOT LISTED: the suite misses it" in report and "killed by timeout" in report
    assert "3 problem(s):" in report


def test_a_run_whose_survivors_are_all_listed_is_ok() -> None:
    (mutant, *_) = _mutants()
    ledger = parse_ledger(f"equivalent: {mutant.id} -- nothing can see it\n")
    summary = summarise([_verdict(mutant, "survived")], ledger, [mutant.id])
    assert summary.ok and summary.total.score == 1.0 and summary.total.judged == 0


def test_a_survivor_listed_as_unspecified_still_counts_against_the_score() -> None:
    first, second, *_ = _mutants()
    ledger = parse_ledger(
        f"unspecified: {first.id} -- observable, but no rule says what it must be\n"
        f"equivalent: {second.id} -- nothing can see it\n"
    )
    summary = summarise(
        [_verdict(first, "survived"), _verdict(second, "survived")], ledger, [first.id, second.id]
    )
    assert summary.ok
    score = summary.total
    assert (score.unspecified, score.equivalent, score.judged, score.killed) == (1, 1, 1, 0)
    assert score.score == 0.0
