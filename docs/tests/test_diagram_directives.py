"""The diagram directives in a small build: inline SVG in the HTML, the transitions table, located errors."""

from __future__ import annotations

import re
from pathlib import Path

from docs.tests._sphinx import Build, build
from lmstream.spec import STATE_TRANSITIONS, StreamState

CONF = 'extensions = ["sphinx.ext.autodoc", "docs._ext.lifecycle", "docs._ext.sequence"]\nnitpicky = True\n'
STATES = """\
Lifecycle
=========

.. autoclass:: lmstream.spec::StreamState
   :members:

.. lmstream-state-diagram::
   :caption: The *lifecycle*.

.. lmstream-transitions::

.. lmstream-sequence:: A stop.

   participant consumer
   participant manager
   consumer -> manager: async for
   manager --x consumer: StreamIncompleteError
"""


def _project(tmp_path: Path, body: str) -> Build:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(CONF)
    (src / "index.rst").write_text(body)
    return build(src, tmp_path / "out")


def test_the_page_has_both_diagrams_and_the_table(tmp_path: Path) -> None:
    result = _project(tmp_path, STATES)
    assert result.warnings == ""
    html = (result.outdir / "index.html").read_text()
    assert html.count("<svg") == 2
    assert 'class="lmstream-diagram lmstream-state-diagram"' in html
    assert 'class="lmstream-diagram lmstream-sequence-diagram"' in html
    assert "<figcaption>" in html and "<em>lifecycle</em>" in html
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


def test_a_mistake_in_a_sequence_is_reported_at_its_line(tmp_path: Path) -> None:
    body = "Title\n=====\n\n.. lmstream-sequence::\n\n   participant a\n   a -> nobody: hi\n"
    result = _project(tmp_path, body)
    assert re.search(
        r"index\.rst:7: WARNING: lmstream-sequence: unknown participant 'nobody'", result.warnings
    )
    assert "<svg" not in (result.outdir / "index.html").read_text()
