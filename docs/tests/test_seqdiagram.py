"""Sequence diagrams: checked by the vendored Mermaid's own parser, written to the page as their source.

The parser is the one the reader's browser runs (docs/_static/mermaid/mermaid.min.js, in Node.js), so a
diagram it rejects is one the reader would see as an error instead of a drawing.
"""

from __future__ import annotations

import hashlib
import re
from html import unescape
from pathlib import Path

import pytest
from docutils import nodes

from docs._ext.mermaid import (
    MERMAID_VERSION,
    VENDORED_SCRIPT,
    MermaidUnavailableError,
    mermaid_errors,
    mermaid_figure,
)
from docs._ext.sequence import sequence_source
from docs.tests._sphinx import DOCS

GOOD = """sequenceDiagram
participant consumer as consumer task
participant manager as stream manager
consumer->>manager: async for token in stream
loop for each token
manager-->>consumer: "Hel"
end
Note over manager: release the lock<br/>state: stopped
manager--xconsumer: StreamIncompleteError
"""


def test_the_vendored_script_is_the_declared_mermaid() -> None:
    head = VENDORED_SCRIPT.read_text(encoding="utf-8")
    assert f'version:"{MERMAID_VERSION}"' in head
    assert (VENDORED_SCRIPT.parent / "LICENSE").read_text().startswith("The MIT License")


def test_the_vendored_script_is_the_one_its_record_names() -> None:
    """README.md beside the script records where it came from; it must describe this very file."""
    record = (VENDORED_SCRIPT.parent / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(VENDORED_SCRIPT.read_bytes()).hexdigest()
    assert f"sha256 of `mermaid.min.js` | `{digest}`" in record
    assert f"| version | {MERMAID_VERSION} " in record
    assert f"mermaid-{MERMAID_VERSION}.tgz" in record and f"**mermaid {MERMAID_VERSION}**" in record


def test_mermaid_reads_a_good_diagram_and_names_the_line_of_a_bad_one() -> None:
    bad = GOOD.replace("manager-->>consumer", "manager=>consumer")
    results = mermaid_errors([GOOD, bad, "sequenceDiagram\nparticipant a\nloop forever\na->>a: x\n"])
    assert results[0] is None
    assert results[1] is not None and "line 6" in results[1]
    assert results[2] is not None  # a loop never closed with 'end'


def test_no_sources_need_no_node() -> None:
    assert mermaid_errors([], script=Path("/nonexistent/mermaid.js")) == []


def test_a_missing_script_is_named(tmp_path: Path) -> None:
    with pytest.raises(MermaidUnavailableError, match="no Mermaid script at"):
        mermaid_errors([GOOD], script=tmp_path / "mermaid.min.js")


def test_a_script_that_is_not_mermaid_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "mermaid.min.js"
    script.write_text("throw new Error('not mermaid');\n")
    with pytest.raises(MermaidUnavailableError, match="not mermaid"):
        mermaid_errors([GOOD], script=script)


def test_the_source_has_the_header_and_the_title_on_one_line() -> None:
    source = sequence_source("a->>b: hi", title="A stop\n  from another task")
    assert source.splitlines() == ["sequenceDiagram", "accTitle: A stop from another task", "a->>b: hi"]
    assert sequence_source("a->>b: hi", title="").splitlines()[1] == "accTitle: Sequence diagram"


def test_the_figure_holds_the_source_escaped_for_html() -> None:
    source = 'sequenceDiagram\na->>b: x < y & "z"'
    figure = mermaid_figure(source, caption=[nodes.Text("Cap")], caption_text="Cap")
    [raw] = figure.findall(nodes.raw)
    match = re.search(r'<pre class="mermaid">(.*?)</pre>', raw.astext(), re.S)
    assert match and "x &lt; y &amp;" in match.group(1)
    assert unescape(match.group(1)) == source
    assert "<noscript>" in raw.astext()
    assert [c.astext() for c in figure.findall(nodes.caption)] == ["Cap"]


def _docs_diagrams() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for page in sorted(DOCS.glob("**/*.rst")):
        text = page.read_text()
        for match in re.finditer(r"^\.\. lmstream-sequence::.*\n((?:\n|   .*\n)+)", text, re.MULTILINE):
            line = text.count("\n", 0, match.start()) + 1
            body = "\n".join(row[3:] for row in match.group(1).splitlines())
            found.append((f"{page.relative_to(DOCS)}:{line}", f"sequenceDiagram\n{body}"))
    return found


def test_the_docs_diagrams_parse() -> None:
    """Every ``lmstream-sequence`` in the docs is one Mermaid draws (the build says where, this says it
    quickly, in one run of the parser)."""
    diagrams = _docs_diagrams()
    assert len(diagrams) >= 3
    errors = mermaid_errors([source for _, source in diagrams])
    assert {where: error for (where, _), error in zip(diagrams, errors, strict=True) if error} == {}
