"""Sequence diagrams: the text is read as written, mistakes are named by line, the drawing has every step."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from docs._ext.seqdiagram import (
    Arrow,
    FrameEnd,
    FrameStart,
    Message,
    Note,
    SequenceSyntaxError,
    parse_sequence,
    render_sequence,
)
from docs.tests._sphinx import DOCS

SVG = "{http://www.w3.org/2000/svg}"

TEXT = """
participant consumer: consumer task
participant manager
# a comment
participant engine
consumer -> manager: async for token in stream
loop for each token
manager -> engine: __anext__()
engine --> manager: "Hel"
end
manager -> manager: release the lock\\nstate: stopped
note over manager, engine: cleanup runs
manager --x consumer: StreamIncompleteError
"""


def test_statements_are_read_in_order() -> None:
    diagram = parse_sequence(TEXT)
    assert [(p.name, p.label) for p in diagram.participants] == [
        ("consumer", "consumer task"),
        ("manager", "manager"),
        ("engine", "engine"),
    ]
    kinds = [type(step) for step in diagram.steps]
    assert kinds == [Message, FrameStart, Message, Message, FrameEnd, Message, Note, Message]
    first = diagram.steps[0]
    assert isinstance(first, Message)
    assert (first.source, first.target, first.arrow, first.label) == (
        "consumer",
        "manager",
        Arrow.CALL,
        "async for token in stream",
    )
    arrows = [s.arrow for s in diagram.steps if isinstance(s, Message)]
    assert arrows == [Arrow.CALL, Arrow.CALL, Arrow.REPLY, Arrow.CALL, Arrow.RAISE]
    own = diagram.steps[5]
    assert isinstance(own, Message) and own.label == "release the lock\nstate: stopped"


def test_the_drawing_has_every_participant_and_step() -> None:
    diagram = parse_sequence(TEXT)
    root = ET.fromstring(render_sequence(diagram, title="t"))
    groups = list(root.iter(f"{SVG}g"))
    participants = [g.get("data-participant") for g in groups if g.get("class") == "participant"]
    assert participants == ["consumer", "manager", "engine"]
    messages = [
        (g.get("data-source"), g.get("data-target"), g.get("data-kind"))
        for g in groups
        if g.get("class") == "message"
    ]
    assert messages == [
        ("consumer", "manager", "call"),
        ("manager", "engine", "call"),
        ("engine", "manager", "reply"),
        ("manager", "manager", "call"),
        ("manager", "consumer", "raise"),
    ]
    assert [g.get("data-kind") for g in groups if g.get("class") == "frame"] == ["loop"]
    assert len([g for g in groups if g.get("class") == "note"]) == 1
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    for label in ("consumer task", "__anext__()", '"Hel"', "StreamIncompleteError", "cleanup runs"):
        assert label in text


def test_columns_leave_room_for_labels() -> None:
    """A long label between neighbours pushes them apart; the canvas holds every participant box."""
    short = render_sequence(parse_sequence("participant a\nparticipant b\na -> b: x"))
    long = render_sequence(parse_sequence("participant a\nparticipant b\na -> b: " + "x" * 80))
    width = re.compile(r'width="([0-9.]+)"')
    short_width, long_width = (float(m.group(1)) for m in (width.search(short), width.search(long)) if m)
    assert long_width > short_width + 400


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("participant a\na -> b: x", 2, "unknown participant 'b'"),
        ("participant a\nparticipant a", 2, "declared twice"),
        ("participant a\nend", 2, "'end' without"),
        ("participant a\nloop forever\na -> a: x", 2, "never closed"),
        ("participant a\na => a: x", 2, "cannot read"),
        ("# nothing", 1, "at least one 'participant'"),
        ("participant a\nnote over a, b: x", 2, "unknown participant 'b'"),
    ],
)
def test_mistakes_name_their_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(SequenceSyntaxError, match=problem) as caught:
        parse_sequence(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")


def test_the_docs_diagrams_parse() -> None:
    """Every ``lmstream-sequence`` in the docs is valid (the build says where, this says it quickly)."""
    blocks = 0
    for page in DOCS.glob("**/*.rst"):
        for match in re.finditer(
            r"^\.\. lmstream-sequence::.*\n((?:\n|   .*\n)+)", page.read_text(), re.MULTILINE
        ):
            parse_sequence("\n".join(line[3:] for line in match.group(1).splitlines()))
            blocks += 1
    assert blocks >= 3
