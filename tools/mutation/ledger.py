"""The committed list of survivors that are not the suite's fault: ``tools/mutation/equivalent.txt``.

One entry a line, ``KIND: ID -- REASON``:

- ``equivalent``: no observable behaviour changes; the reason says why (what makes the change invisible
  through the public API).
- ``py3.10``: the change is in code that only Python 3.10 runs (the suite runs on the interpreter
  ``make mutation`` uses, 3.11+); the reason says which code.
- ``unspecified``: the change is observable, but no rule of the spec governs what changes (a diagnostic
  detail, or a parameter of the reference's own beyond the protocols); the reason says what changes and
  why no rule covers it. Unlike the two above, these count against the score.

Lines starting with ``#`` and blank lines are ignored. Every entry must name a mutant that exists (a stale
entry is reported: the code it named changed and needs another look) and must say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = ["KINDS", "LEDGER", "Entry", "LedgerError", "parse_ledger", "read_ledger"]

LEDGER: Final = Path(__file__).resolve().parent / "equivalent.txt"
"""The committed list."""

Kind = Literal["equivalent", "py3.10", "unspecified"]
KINDS: Final[tuple[Kind, ...]] = ("equivalent", "py3.10", "unspecified")
_KIND: Final[dict[str, Kind]] = {kind: kind for kind in KINDS}


class LedgerError(ValueError):
    """A malformed line of the list: names the line and what a line must look like."""


@dataclass(frozen=True)
class Entry:
    """One listed survivor."""

    kind: Kind
    mutant_id: str
    reason: str
    line: int


def parse_ledger(text: str, *, name: str = "equivalent.txt") -> dict[str, Entry]:
    """The entries of the list's ``text``, by mutant ID.

    :raises LedgerError: for a line that is not ``KIND: ID -- REASON`` with a known kind and a reason, or
        a mutant listed twice.
    """
    entries: dict[str, Entry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        written, colon, rest = line.partition(": ")
        mutant_id, separator, reason = rest.strip().partition(" -- ")
        kind = _KIND.get(written)
        if not colon or kind is None:
            raise LedgerError(
                f"{name}:{number}: a line must start with one of {', '.join(KINDS)} and ': ', "
                f"got {line[:40]!r}"
            )
        mutant_id = mutant_id.strip()
        if not separator or not reason.strip() or not mutant_id:
            raise LedgerError(
                f"{name}:{number}: expected 'KIND: MUTANT-ID -- why no observable behaviour changes', "
                f"got {line[:60]!r}"
            )
        if mutant_id in entries:
            raise LedgerError(
                f"{name}:{number}: {mutant_id!r} is listed twice (first on line {entries[mutant_id].line})"
            )
        entries[mutant_id] = Entry(kind, mutant_id, reason.strip(), number)
    return entries


def read_ledger(path: Path = LEDGER) -> dict[str, Entry]:
    """The entries of the committed list (none when the file does not exist)."""
    if not path.exists():
        return {}
    return parse_ledger(path.read_text(encoding="utf-8"), name=path.name)
