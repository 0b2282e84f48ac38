"""``.. lmstream-mutation::`` renders the mutation score of the reference and the list of listed survivors.

Both come from committed files: ``tools/mutation/results.json`` (written by ``make mutation``: the counts per
file, the survivors, the mutants killed by timeout, and a digest of the mutated files) and
``tools/mutation/equivalent.txt`` (every survivor that is not the suite's fault, with the reason). Nothing
is run: the build stays fast and offline. When the reference has changed since the results were written
(the digest differs), the page says so in a warning box instead of passing old figures off as current.
"""

from __future__ import annotations

import json
from typing import Any, Final

from docutils import nodes
from docutils.nodes import Node
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from tools.mutation import MUTATED_FILES
from tools.mutation.ledger import LEDGER, Entry, read_ledger
from tools.mutation.report import RESULTS
from tools.mutation.run import source_digest

from .tables import table

__all__ = ["MutationDirective", "score_rows", "setup"]

_COLUMNS: Final = (
    "file",
    "mutants",
    "killed",
    "by timeout",
    "survived",
    "equivalent",
    "py3.10",
    "unspecified",
)
_KIND_TITLES: Final = {
    "equivalent": "Equivalent: no observable behaviour changes",
    "py3.10": "Python 3.10 only: code the 3.11+ interpreter of make mutation never runs",
    "unspecified": "Unspecified: observable, but no rule governs it (these count against the score)",
}


def score_rows(results: dict[str, Any]) -> list[list[str]]:
    """The table's rows: one per file, then the total (counts, then the score as a percentage)."""
    rows: list[list[str]] = []
    for name, counts in [*results["files"].items(), ("total", results["total"])]:
        row = [name, *(str(counts[key]) for key in ("mutants", "killed", "timeouts", "survived"))]
        row += [str(counts[key]) for key in ("equivalent", "py310", "unspecified")]
        rows.append([*row, f"{counts['score']:.1%}"])
    return rows


class MutationDirective(SphinxDirective):
    """The score table, a staleness warning if due, and the listed survivors grouped by kind."""

    has_content = False

    def run(self) -> list[Node]:
        self.env.note_dependency(str(RESULTS))
        self.env.note_dependency(str(LEDGER))
        results: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
        found: list[Node] = []
        total = results["total"]
        summary = (
            f"{total['mutants']} mutants of {', '.join(MUTATED_FILES)}; the suite killed {total['killed']} "
            f"({total['timeouts']} of them by timeout) and {total['survived']} survived. Leaving out the "
            f"{total['equivalent']} equivalent mutants and the {total['py310']} that change code only Python "
            f"3.10 runs, the score is {total['score']:.1%}. Measured with Python {results['python']}, "
            f"{results['jobs']} mutants at a time, each bounded at {results['bound']:.0f} s; the whole run "
            f"took {results['seconds']:.0f} s."
        )
        found.append(nodes.paragraph(summary, summary))
        if results.get("digest") != source_digest(MUTATED_FILES):
            warning = nodes.warning()
            text = (
                "The reference has changed since these figures were measured: run make mutation and commit "
                "tools/mutation/results.json."
            )
            warning += nodes.paragraph(text, text)
            found.append(warning)
        found.append(table((*_COLUMNS, "score"), score_rows(results)))
        entries = read_ledger()
        for kind, title in _KIND_TITLES.items():
            listed = [e for e in entries.values() if e.kind == kind]
            if not listed:
                continue
            section = nodes.rubric(title, f"{title} ({len(listed)})")
            found.append(section)
            found.append(_entries(listed))
        return found


def _entries(listed: list[Entry]) -> nodes.bullet_list:
    bullets = nodes.bullet_list()
    for entry in listed:
        item = nodes.list_item()
        paragraph = nodes.paragraph()
        paragraph += nodes.literal(entry.mutant_id, entry.mutant_id)
        paragraph += nodes.Text(f": {entry.reason}")
        item += paragraph
        bullets += item
    return bullets


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("lmstream-mutation", MutationDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
