"""``.. lmstream-sequence:: Caption`` draws the Mermaid sequence diagram written in the directive's content.

The content is the body of a Mermaid ``sequenceDiagram`` (``participant a as label``, ``a->>b: call``,
``b-->>a: reply``, ``a--xb: raised``, ``Note over a: text``, ``loop``/``opt`` ... ``end``; ``<br/>``
breaks a label). The directive adds the header and the caption as the diagram's accessible title, and
checks the diagram with the vendored Mermaid's parser: a diagram the reader's browser could not draw is
a build warning at its line in the ``.rst`` file. (The check leaves the title out: Mermaid sanitises it
with DOMPurify, which needs a DOM that Node.js does not have.)
"""

from __future__ import annotations

import re
from typing import Any, Final

from docutils.nodes import Node
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from lmstream.spec import SPEC_VERSION

from . import mermaid
from .mermaid import MermaidUnavailableError, mermaid_errors, mermaid_figure

__all__ = ["SequenceDirective", "sequence_source", "setup"]

logger = logging.getLogger(__name__)

_HEADER: Final = "sequenceDiagram"
_LINE_RE: Final = re.compile(r"\bline (\d+)\b")


def sequence_source(body: str, *, title: str) -> str:
    """The complete Mermaid source: the header, ``title`` as ``accTitle``, then ``body`` as written."""
    one_line = " ".join(title.split()) or "Sequence diagram"
    return f"{_HEADER}\naccTitle: {one_line}\n{body}"


class SequenceDirective(SphinxDirective):
    """The directive: an optional caption as argument, the diagram's statements as content."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[Node]:
        self.env.note_dependency(mermaid.VENDORED_SCRIPT)  # a new Mermaid may read the text differently
        caption = self.arguments[0] if self.arguments else ""
        inline, messages = self.parse_inline(caption, lineno=self.lineno) if caption else ([], [])
        title = "".join(node.astext() for node in inline)
        body = "\n".join(self.content)
        try:
            [error] = mermaid_errors([f"{_HEADER}\n{body}"])
        except MermaidUnavailableError as exc:
            logger.warning(
                "lmstream-sequence: cannot check the diagram: %s", exc, location=self.get_location()
            )
            error = None
        if error is not None:
            self._warn(error)
            return [*messages]
        source = sequence_source(body, title=title)
        return [mermaid_figure(source, caption=inline, caption_text=caption), *messages]

    def _warn(self, error: str) -> None:
        """Report Mermaid's complaint at the line it names, in one line."""
        match = _LINE_RE.search(error)
        line = int(match.group(1)) - 1 if match else 0  # Mermaid counts the header line
        if 1 <= line <= len(self.content):
            where = (self.env.docname, self.content_offset + line)
            problem = f"Mermaid cannot read {self.content[line - 1].strip()!r}"
        else:
            where, problem = (self.env.docname, self.lineno), "Mermaid cannot read the diagram"
        detail = error.strip().splitlines()[-1].strip()
        logger.warning(
            "lmstream-sequence: %s: %s",
            problem,
            detail[:200],
            location=where,
            type="lmstream",
            subtype="sequence",
        )


def setup(app: Sphinx) -> dict[str, Any]:
    """Register ``lmstream-sequence`` (and the Mermaid loader it needs)."""
    app.setup_extension(mermaid.__name__)
    app.add_directive("lmstream-sequence", SequenceDirective)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
