"""The lifecycle diagram is written from StreamState and STATE_TRANSITIONS: every state, every transition.

What the reader's browser draws is the Mermaid source on the page (test_diagram_directives checks that the
page holds exactly this source); here the source is read back statement by statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from docs._ext.lifecycle import lifecycle_graph, state_diagram_source, state_meanings
from lmstream.spec import STATE_TRANSITIONS, TERMINAL_STATES, StreamState

TABLE = {(a.value, b.value) for a, targets in STATE_TRANSITIONS.items() for b in targets}


@dataclass(frozen=True)
class Drawn:
    """The statements of a ``stateDiagram-v2`` that say what is drawn."""

    declared: list[str]
    starts: list[str]
    moves: list[tuple[str, str]]
    classes: dict[str, set[str]]
    title: str
    description: str


def _read(source: str) -> Drawn:
    lines = source.splitlines()
    assert lines[0] == "stateDiagram-v2"
    declared: list[str] = []
    starts: list[str] = []
    moves: list[tuple[str, str]] = []
    classes: dict[str, set[str]] = {}
    title = description = ""
    for line in lines[1:]:
        if m := re.fullmatch(r"accTitle: (.*)", line):
            title = m.group(1)
        elif m := re.fullmatch(r"accDescr: (.*)", line):
            description = m.group(1)
        elif m := re.fullmatch(r"\[\*\] --> (\w+)", line):
            starts.append(m.group(1))
        elif m := re.fullmatch(r"(\w+) --> (\w+)", line):
            moves.append((m.group(1), m.group(2)))
        elif m := re.fullmatch(r"class ([\w, ]+) (\w+)", line):
            classes[m.group(2)] = set(m.group(1).split(", "))
        elif re.fullmatch(r"\w+", line):
            declared.append(line)
        else:
            assert line.startswith("classDef "), f"unexpected statement {line!r}"
    return Drawn(declared, starts, moves, classes, title, description)


def _lifecycle() -> Drawn:
    states, transitions = lifecycle_graph()
    return _read(state_diagram_source(states, transitions, title="The lifecycle"))


def test_the_graph_is_the_enum_and_the_table() -> None:
    states, transitions = lifecycle_graph()
    assert states == [s.value for s in StreamState]
    assert set(transitions) == TABLE
    assert len(transitions) == len(TABLE)


def test_the_diagram_has_every_state_and_every_transition_once() -> None:
    drawn = _lifecycle()
    assert drawn.declared == [s.value for s in StreamState]  # in the enum's order
    assert set(drawn.moves) == TABLE
    assert len(drawn.moves) == len(TABLE)


def test_terminal_and_start_states_follow_the_table() -> None:
    drawn = _lifecycle()
    assert drawn.starts == [StreamState.PENDING.value]
    assert drawn.classes["terminal"] == {s.value for s in TERMINAL_STATES}
    assert drawn.classes["active"] == {s.value for s in StreamState} - {s.value for s in TERMINAL_STATES}


def test_the_diagram_says_itself_in_words() -> None:
    """The accessible title and description (what a screen reader announces) name everything drawn."""
    drawn = _lifecycle()
    assert drawn.title == "The lifecycle"
    for state in StreamState:
        assert state.value in drawn.description
    for before, after in TABLE:
        assert f"{before} to {after}" in drawn.description


def test_editing_the_table_changes_the_diagram() -> None:
    """A new state and transition appear with no other edit (here on a copy of the table)."""
    states = [s.value for s in StreamState] + ["archived"]
    _, transitions = lifecycle_graph()
    drawn = _read(state_diagram_source(states, [*transitions, ("completed", "archived")]))
    assert "archived" in drawn.declared
    assert ("completed", "archived") in drawn.moves
    assert "completed" not in drawn.classes["terminal"] and "archived" in drawn.classes["terminal"]


def test_a_repeated_transition_is_drawn_once_and_a_lone_state_is_shown() -> None:
    drawn = _read(state_diagram_source(["a", "b", "lone"], [("a", "b"), ("a", "b")]))
    assert drawn.moves == [("a", "b")]
    assert drawn.declared == ["a", "b", "lone"]
    assert drawn.starts == ["a", "lone"]


def test_every_state_has_a_meaning() -> None:
    meanings = state_meanings()
    assert set(meanings) == set(StreamState)
    assert all(text.strip() for text in meanings.values())


@pytest.mark.parametrize(
    ("states", "transitions", "message"),
    [
        (["a", "a"], [], "duplicate"),
        (["a", "b"], [("a", "c")], "unknown state 'c'"),
        (["a", "b"], [("a", "a")], "not a transition"),
        (["a b"], [], "not a Mermaid state id"),
        (["a-->b"], [], "not a Mermaid state id"),
    ],
)
def test_bad_input_is_named(states: list[str], transitions: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        state_diagram_source(states, transitions)
