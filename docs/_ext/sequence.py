"""``.. lmstream-sequence:: Caption`` draws a sequence diagram written in the directive's content.

The syntax is :mod:`.seqdiagram`'s (``participant``, ``A -> B: text``, ``A --> B``, ``A --x B``,
``note over A: text``, ``loop``/``opt`` ... ``end``). The diagram is inlined as SVG in an HTML
``<figure>`` with the caption below it; a mistake in the text is reported at its line in the ``.rst`` file.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.nodes import Node
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from lmstream.spec import SPEC_VERSION

from . import seqdiagram, svg
from .seqdiagram import SequenceSyntaxError, parse_sequence, render_sequence

__all__ = ["SequenceDirective", "setup"]

logger = logging.getLogger(__name__)


class SequenceDirective(SphinxDirective):
    """The directive: an optional caption as argument, the diagram's statements as content."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[Node]:
        for source in (__file__, seqdiagram.__file__, svg.__file__):  # rebuild when the drawing code changes
            self.env.note_dependency(source)
        caption = self.arguments[0] if self.arguments else ""
        try:
            diagram = parse_sequence("\n".join(self.content))
        except SequenceSyntaxError as exc:
            logger.warning(
                "lmstream-sequence: %s",
                exc.problem,
                location=(self.env.docname, self.content_offset + exc.line),
                type="lmstream",
                subtype="sequence",
            )
            return []
        drawing = render_sequence(diagram, title=caption or "Sequence diagram")
        figure = nodes.figure(classes=["lmstream-figure"])
        figure += nodes.raw("", drawing, format="html")
        if not caption:
            return [figure]
        inline, messages = self.parse_inline(caption, lineno=self.lineno)
        figure += nodes.caption(caption, "", *inline)
        return [figure, *messages]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register ``lmstream-sequence``."""
    app.add_directive("lmstream-sequence", SequenceDirective)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
