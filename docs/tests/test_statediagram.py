"""The lifecycle diagram is drawn from StreamState and STATE_TRANSITIONS: every state, every transition."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from docs._ext.lifecycle import lifecycle_graph, state_meanings
from docs._ext.statediagram import layout_states, render_state_diagram
from lmstream.spec import STATE_TRANSITIONS, TERMINAL_STATES, StreamState

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # also proves the SVG is well-formed XML


def _groups(root: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == kind]


def test_the_graph_is_the_enum_and_the_table() -> None:
    states, transitions = lifecycle_graph()
    assert states == [s.value for s in StreamState]
    expected = {(a.value, b.value) for a, targets in STATE_TRANSITIONS.items() for b in targets}
    assert set(transitions) == expected
    assert len(transitions) == len(expected)


def test_the_diagram_has_every_state_and_every_transition() -> None:
    states, transitions = lifecycle_graph()
    root = _parse(render_state_diagram(states, transitions))
    drawn_states = {g.get("data-state") for g in _groups(root, "state")}
    assert drawn_states == {s.value for s in StreamState}
    drawn_moves = {(g.get("data-source"), g.get("data-target")) for g in _groups(root, "transition")}
    assert drawn_moves == {(a.value, b.value) for a, targets in STATE_TRANSITIONS.items() for b in targets}
    labels = {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}
    assert {s.value for s in StreamState} <= labels


def test_terminal_and_start_states_follow_the_table() -> None:
    states, transitions = lifecycle_graph()
    root = _parse(render_state_diagram(states, transitions))
    terminal = {g.get("data-state") for g in _groups(root, "state") if g.get("data-terminal") == "true"}
    start = {g.get("data-state") for g in _groups(root, "state") if g.get("data-initial") == "true"}
    assert terminal == {s.value for s in TERMINAL_STATES}
    assert start == {StreamState.PENDING.value}


def test_the_lifecycle_layout_is_readable() -> None:
    """No crossings, no overlapping boxes, every arrow ends on its target's top edge, layers go down."""
    states, transitions = lifecycle_graph()
    layout = layout_states(states, transitions)
    assert layout.crossings == 0
    boxes = {s.name: s for s in layout.states}
    for a, b in itertools.combinations(layout.states, 2):
        if a.layer == b.layer:
            assert abs(a.x - b.x) >= (a.width + b.width) / 2, (a.name, b.name)
    for t in layout.transitions:
        target, source = boxes[t.target], boxes[t.source]
        tip_x, tip_y = t.points[-1]
        assert tip_y == target.y
        assert abs(tip_x - target.x) <= target.width / 2
        assert t.points[0][1] == source.y + source.height
        assert target.layer > source.layer
    assert all(s.x - s.width / 2 >= 0 and s.x + s.width / 2 <= layout.width for s in layout.states)


def test_editing_the_table_changes_the_diagram() -> None:
    """A new state and transition appear with no other edit (here on a copy of the table)."""
    states = [s.value for s in StreamState] + ["archived"]
    _, transitions = lifecycle_graph()
    root = _parse(render_state_diagram(states, [*transitions, ("completed", "archived")]))
    assert "archived" in {g.get("data-state") for g in _groups(root, "state")}
    assert ("completed", "archived") in {
        (g.get("data-source"), g.get("data-target")) for g in _groups(root, "transition")
    }
    terminal = {g.get("data-state") for g in _groups(root, "state") if g.get("data-terminal") == "true"}
    assert "completed" not in terminal and "archived" in terminal


def test_every_state_has_a_meaning() -> None:
    meanings = state_meanings()
    assert set(meanings) == set(StreamState)
    assert all(text.strip() for text in meanings.values())


@pytest.mark.parametrize(
    ("states", "transitions", "message"),
    [
        ([], [], "at least one state"),
        (["a", "a"], [], "duplicate"),
        (["a", "b"], [("a", "c")], "unknown state 'c'"),
        (["a", "b"], [("a", "a")], "not a transition"),
        (["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")], "cycle"),
    ],
)
def test_bad_input_is_named(states: list[str], transitions: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        layout_states(states, transitions)


def test_a_larger_machine_uses_the_heuristic_and_stays_complete() -> None:
    """Past the exhaustive limit the barycentre sweeps run; every state and transition is still drawn."""
    states = [f"s{i}" for i in range(16)]
    transitions = [("s0", f"s{i}") for i in range(1, 9)] + [(f"s{i}", f"s{i + 7}") for i in range(2, 9)]
    layout = layout_states(states, transitions)
    assert {s.name for s in layout.states} == set(states)
    assert {(t.source, t.target) for t in layout.transitions} == set(transitions)
    root = _parse(render_state_diagram(states, transitions))
    assert len(_groups(root, "transition")) == len(transitions)


def test_labels_are_escaped() -> None:
    root = _parse(render_state_diagram(["<a&b>", 'say "hi"'], [("<a&b>", 'say "hi"')]))
    assert {g.get("data-state") for g in _groups(root, "state")} == {"<a&b>", 'say "hi"'}
