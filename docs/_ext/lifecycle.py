"""Draw and tabulate a stream manager's lifecycle from :class:`lmstream.spec.StreamState` and
:data:`lmstream.spec.STATE_TRANSITIONS`, at build time: editing the enum or the table changes both.

* ``.. lmstream-state-diagram::`` (option ``:caption:``) inlines the state diagram as SVG
  (see :mod:`.statediagram`); it needs no system package and no network.
* ``.. lmstream-transitions::`` renders the same table as a table: each state (linked to its API entry),
  what it means (the enum member's docstring) and the states it may move to.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, cast

from docutils import nodes
from docutils.nodes import Node
from docutils.parsers.rst import directives
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

from lmstream.spec import SPEC_VERSION, STATE_TRANSITIONS, StreamState

from . import statediagram, svg
from .statediagram import render_state_diagram
from .tables import table

__all__ = ["StateDiagramDirective", "TransitionsDirective", "lifecycle_graph", "setup", "state_meanings"]


def lifecycle_graph(
    states: Sequence[StreamState] = tuple(StreamState),
    transitions: Mapping[StreamState, frozenset[StreamState]] = STATE_TRANSITIONS,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The lifecycle as plain data for :func:`~.statediagram.render_state_diagram`: the enum's values in
    declaration order, and every ``(from, to)`` pair of the transition table, in the same order.
    """
    order = {state: i for i, state in enumerate(states)}
    pairs = sorted(
        ((before, after) for before, afters in transitions.items() for after in afters),
        key=lambda pair: (order[pair[0]], order[pair[1]]),
    )
    return [s.value for s in states], [(before.value, after.value) for before, after in pairs]


def state_meanings() -> dict[StreamState, str]:
    """Each state's docstring (the string literal under the member in the enum's source), as reST."""
    docs = ModuleAnalyzer.for_module(StreamState.__module__).find_attr_docs()
    return {
        state: " ".join(line.strip() for line in docs.get((StreamState.__qualname__, state.name), [])).strip()
        for state in StreamState
    }


def _note_state_source(directive: SphinxDirective) -> None:
    for source in (__file__, statediagram.__file__, svg.__file__):  # rebuild when the drawing code changes
        directive.env.note_dependency(source)
    state_source = sys.modules[StreamState.__module__].__file__
    if state_source:  # rebuild the page when the enum or the table changes
        directive.env.note_dependency(state_source)


class StateDiagramDirective(SphinxDirective):
    """Inline the lifecycle state diagram (an HTML ``<figure>`` holding an ``<svg>``)."""

    has_content = False
    option_spec: ClassVar[dict[str, Callable[[str], Any]] | None] = {"caption": directives.unchanged}

    def run(self) -> list[Node]:
        _note_state_source(self)
        states, transitions = lifecycle_graph()
        title = (
            f"The lifecycle of a stream manager: {StreamState.__name__} and {len(transitions)} transitions"
        )
        try:
            drawing = render_state_diagram(states, transitions, title=title)
        except ValueError as exc:
            raise self.error(f"cannot draw the lifecycle: {exc}") from exc
        figure = nodes.figure(classes=["lmstream-figure"])
        figure += nodes.raw("", drawing, format="html")
        caption = cast("str | None", self.options.get("caption"))
        if caption:
            inline, messages = self.parse_inline(caption, lineno=self.lineno)
            figure += nodes.caption(caption, "", *inline)
            return [figure, *messages]
        return [figure]


class TransitionsDirective(SphinxDirective):
    """The transition table, one row per state in the enum's order."""

    has_content = False

    def _state_ref(self, state: StreamState) -> Node:
        target = f"lmstream.spec.StreamState.{state.name}"  # the public name the API reference documents
        ref = pending_xref(
            "", refdomain="py", reftype="attr", reftarget=target, refexplicit=True, refwarn=True
        )
        ref["refdoc"] = self.env.docname
        ref += nodes.literal(state.value, state.value)
        return ref

    def run(self) -> list[Node]:
        _note_state_source(self)
        meanings = state_meanings()
        rows: list[list[Node | str]] = []
        messages: list[Node] = []
        for state in StreamState:
            meaning, problems = self.parse_inline(meanings[state] or "(no docstring)", lineno=self.lineno)
            messages.extend(problems)
            after = nodes.paragraph()
            targets = sorted(STATE_TRANSITIONS.get(state, frozenset()), key=list(StreamState).index)
            if targets:
                for i, target in enumerate(targets):
                    if i:
                        after += nodes.Text(", ")
                    after += self._state_ref(target)
            else:
                after += nodes.emphasis("terminal", "terminal")
            rows.append([self._state_ref(state), nodes.paragraph("", "", *meaning), after])
        return [
            table(
                ["State", "Meaning", "May move to"],
                rows,
                widths=[18, 57, 25],
                classes=["lmstream-transitions"],
            ),
            *messages,
        ]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register ``lmstream-state-diagram`` and ``lmstream-transitions``."""
    app.add_directive("lmstream-state-diagram", StateDiagramDirective)
    app.add_directive("lmstream-transitions", TransitionsDirective)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
