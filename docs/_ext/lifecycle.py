"""Draw and tabulate a stream manager's lifecycle from :class:`lmstream.spec.StreamState` and
:data:`lmstream.spec.STATE_TRANSITIONS`, at build time: editing the enum or the table changes both.

* ``.. lmstream-state-diagram::`` (option ``:caption:``) writes the state diagram as a Mermaid
  ``stateDiagram-v2`` (:func:`state_diagram_source`), drawn in the browser (see :mod:`.mermaid`): a dot
  marks the start, terminal states have a thick border.
* ``.. lmstream-transitions::`` renders the same table as a table: each state (linked to its API entry),
  what it means (the enum member's docstring) and the states it may move to.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, cast

from docutils import nodes
from docutils.nodes import Node
from docutils.parsers.rst import directives
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

from lmstream.spec import SPEC_VERSION, STATE_TRANSITIONS, StreamState

from . import mermaid
from .mermaid import mermaid_figure
from .tables import table

__all__ = [
    "StateDiagramDirective",
    "TransitionsDirective",
    "lifecycle_graph",
    "setup",
    "state_diagram_source",
    "state_meanings",
]

_STATE_ID: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STYLES: Final = (
    "classDef active fill:#ddf4ff,stroke:#0969da,stroke-width:1.5px",
    "classDef terminal fill:#f6f8fa,stroke:#1f2328,stroke-width:3px",
)


def lifecycle_graph(
    states: Sequence[StreamState] = tuple(StreamState),
    transitions: Mapping[StreamState, frozenset[StreamState]] = STATE_TRANSITIONS,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The lifecycle as plain data for :func:`state_diagram_source`: the enum's values in declaration
    order, and every ``(from, to)`` pair of the transition table, in the same order.
    """
    order = {state: i for i, state in enumerate(states)}
    pairs = sorted(
        ((before, after) for before, afters in transitions.items() for after in afters),
        key=lambda pair: (order[pair[0]], order[pair[1]]),
    )
    return [s.value for s in states], [(before.value, after.value) for before, after in pairs]


def state_diagram_source(
    states: Sequence[str], transitions: Iterable[tuple[str, str]], *, title: str = "State diagram"
) -> str:
    """The Mermaid ``stateDiagram-v2`` source of a state machine: every state declared in the given order,
    a start marker (``[*] --> s``) into each state nothing leads to, each transition once, and the states
    nothing leaves in class ``terminal`` (the others in ``active``). ``title`` and a description listing
    the states and transitions in words are the diagram's accessible title and description.

    :raises ValueError: for a duplicate or unknown state, a name Mermaid cannot take as a state id, or a
        transition from a state to itself, naming it.
    """
    if len(set(states)) != len(states):
        raise ValueError(f"duplicate state names in {list(states)!r}")
    for state in states:
        if not _STATE_ID.fullmatch(state):
            raise ValueError(f"state name {state!r} is not a Mermaid state id (letters, digits and '_')")
    moves = list(dict.fromkeys(transitions))
    for before, after in moves:
        for end in (before, after):
            if end not in states:
                known = list(states)
                raise ValueError(
                    f"transition {before!r} -> {after!r} names an unknown state {end!r}; known: {known}"
                )
        if before == after:
            raise ValueError(f"transition {before!r} -> {after!r}: staying in a state is not a transition")
    starts = [s for s in states if all(after != s for _, after in moves)]
    terminal = [s for s in states if all(before != s for before, _ in moves)]
    active = [s for s in states if s not in terminal]
    described = "; ".join(f"{a} to {b}" for a, b in moves) or "none"
    lines = [
        "stateDiagram-v2",
        f"accTitle: {' '.join(title.split())}",
        f"accDescr: States: {', '.join(states)}. Start: {', '.join(starts) or 'none'}. "
        f"Terminal: {', '.join(terminal) or 'none'}. Transitions: {described}.",
        *_STYLES,
        *states,
        *(f"[*] --> {s}" for s in starts),
        *(f"{a} --> {b}" for a, b in moves),
    ]
    lines += [
        f"class {', '.join(group)} {name}"
        for name, group in (("active", active), ("terminal", terminal))
        if group
    ]
    return "\n".join(lines)


def state_meanings() -> dict[StreamState, str]:
    """Each state's docstring (the string literal under the member in the enum's source), as reST."""
    docs = ModuleAnalyzer.for_module(StreamState.__module__).find_attr_docs()
    return {
        state: " ".join(line.strip() for line in docs.get((StreamState.__qualname__, state.name), [])).strip()
        for state in StreamState
    }


def _note_state_source(directive: SphinxDirective) -> None:
    directive.env.note_dependency(__file__)  # rebuild when the drawing code changes
    state_source = sys.modules[StreamState.__module__].__file__
    if state_source:  # rebuild the page when the enum or the table changes
        directive.env.note_dependency(state_source)


class StateDiagramDirective(SphinxDirective):
    """The lifecycle state diagram: an HTML ``<figure>`` holding its Mermaid source."""

    has_content = False
    option_spec: ClassVar[dict[str, Callable[[str], Any]] | None] = {"caption": directives.unchanged}

    def run(self) -> list[Node]:
        _note_state_source(self)
        states, transitions = lifecycle_graph()
        title = (
            f"The lifecycle of a stream manager: {StreamState.__name__} and {len(transitions)} transitions"
        )
        try:
            source = state_diagram_source(states, transitions, title=title)
        except ValueError as exc:
            raise self.error(f"cannot draw the lifecycle: {exc}") from exc
        caption = cast("str | None", self.options.get("caption"))
        inline, messages = self.parse_inline(caption, lineno=self.lineno) if caption else ([], [])
        return [mermaid_figure(source, caption=inline, caption_text=caption or ""), *messages]


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
    """Register ``lmstream-state-diagram`` (and the Mermaid loader it needs) and ``lmstream-transitions``."""
    app.setup_extension(mermaid.__name__)
    app.add_directive("lmstream-state-diagram", StateDiagramDirective)
    app.add_directive("lmstream-transitions", TransitionsDirective)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
