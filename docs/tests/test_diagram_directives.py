"""The diagram directives in a small build: the page holds each diagram's Mermaid source and loads the
vendored Mermaid from ``_static``, nothing from the network; mistakes are reported at their line."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from docs._ext.lifecycle import lifecycle_graph, state_diagram_source
from docs._ext.mermaid import MERMAID_SCRIPT, VENDORED_SCRIPT
from docs._ext.sequence import sequence_source
from docs.tests._sphinx import DOCS, Build, build
from lmstream.spec import STATE_TRANSITIONS, StreamState

CONF = f"""\
extensions = ["sphinx.ext.autodoc", "docs._ext.lifecycle", "docs._ext.sequence"]
nitpicky = True
html_static_path = [{str(DOCS / "_static")!r}]
"""
SEQUENCE = """\
participant consumer
participant manager
consumer->>manager: async for
manager--xconsumer: StreamIncompleteError"""
STATES = f"""\
Lifecycle
=========

.. autoclass:: lmstream.spec::StreamState
   :members:

.. lmstream-state-diagram::
   :caption: The *lifecycle*.

.. lmstream-transitions::

.. lmstream-sequence:: A *stop*.

{"".join("   " + line + chr(10) for line in SEQUENCE.splitlines())}
"""


def _project(tmp_path: Path, body: str, conf: str = CONF, *, other: str | None = None) -> Build:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(conf)
    (src / "index.rst").write_text(body if other is None else body + "\n.. toctree::\n\n   other\n")
    if other is not None:
        (src / "other.rst").write_text(other)
    return build(src, tmp_path / "out")


def _diagrams(html: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'<pre class="mermaid">(.*?)</pre>', html, re.S)]


def test_the_page_has_both_diagrams_and_the_table(tmp_path: Path) -> None:
    result = _project(tmp_path, STATES)
    assert result.warnings == ""
    html = (result.outdir / "index.html").read_text()
    states, transitions = lifecycle_graph()
    title = f"The lifecycle of a stream manager: StreamState and {len(transitions)} transitions"
    assert _diagrams(html) == [
        state_diagram_source(states, transitions, title=title),
        sequence_source(SEQUENCE, title="A stop."),
    ]
    assert "<figcaption>" in html and "<em>lifecycle</em>" in html and "<em>stop</em>" in html
    table = html[html.index('class="lmstream-transitions') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr class=\"row-(?:odd|even)\">(.*?)</tr>", table, re.S)[1:]  # skip the header
    assert len(rows) == len(StreamState)
    for state, row in zip(StreamState, rows, strict=True):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        assert f"#lmstream.spec.StreamState.{state.name}" in cells[0]
        targets = set(re.findall(r"#lmstream\.spec\.StreamState\.(\w+)", cells[2]))
        assert targets == {t.name for t in STATE_TRANSITIONS[state]}
        assert ("terminal" in cells[2]) == (not STATE_TRANSITIONS[state])


def test_the_page_loads_the_vendored_mermaid_and_nothing_remote(tmp_path: Path) -> None:
    """The script is a classic one (a module would not load from file://), served from the build."""
    result = _project(tmp_path, STATES, other="Other\n=====\n\nNo diagram here.\n")
    html = (result.outdir / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>", html)
    sources = [m.group(1) for s in scripts if (m := re.search(r'src="([^"?]+)', s))]
    assert f"_static/{MERMAID_SCRIPT}" in sources
    assert not [s for s in sources if "//" in s]  # no http(s)://, no protocol-relative URL
    assert not [s for s in scripts if "mermaid" in s and "module" in s]
    assert "mermaid.initialize(" in html
    shipped = result.outdir / "_static" / MERMAID_SCRIPT
    assert shipped.read_bytes() == VENDORED_SCRIPT.read_bytes()
    assert "mermaid" not in (result.outdir / "other.html").read_text()  # only pages with a diagram


def test_a_build_that_would_not_ship_mermaid_says_so(tmp_path: Path) -> None:
    conf = 'extensions = ["docs._ext.sequence"]\n'
    result = _project(tmp_path, "Title\n=====\n", conf)
    assert "no html_static_path entry holds it" in result.warnings


def test_a_mistake_in_a_sequence_is_reported_at_its_line(tmp_path: Path) -> None:
    body = "Title\n=====\n\n.. lmstream-sequence::\n\n   participant a\n   a => b: hi\n"
    result = _project(tmp_path, body)
    assert re.search(
        r"index\.rst:7: WARNING: lmstream-sequence: Mermaid cannot read 'a => b: hi'", result.warnings
    )
    assert 'class="mermaid"' not in (result.outdir / "index.html").read_text()
