"""Sequence diagrams from a few lines of text, drawn as SVG with no dependency.

The text, one statement per line (blank lines and lines starting with ``#`` are ignored)::

    participant consumer: consumer task     # a column; the label after ':' is optional
    consumer -> manager: async for token     # a call (solid line, filled arrowhead)
    engine --> manager: "Hel"                # a reply or yielded value (dashed, open arrowhead)
    manager --x consumer: StreamIncompleteError   # a raised exception (red)
    manager -> manager: release the lock     # a step within one participant (a loop back)
    note over engine: blocked                # a note over one column, or 'note over a, b: ...'
    loop for each token                      # a frame around the steps up to 'end' ('opt' also)
    end

Participants are drawn left to right in the order they are declared; every name a step uses must be
declared first. ``\\n`` in a label breaks the line. :func:`parse_sequence` reports a mistake as a
:class:`SequenceSyntaxError` naming the line; :func:`render_sequence` lays the diagram out and draws it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Final

from .svg import INK, LINE_HEIGHT, MUTED, Attrs, arrowhead, document, element, text_block, text_width

__all__ = [
    "Arrow",
    "FrameEnd",
    "FrameStart",
    "Message",
    "Note",
    "Participant",
    "SequenceDiagram",
    "SequenceSyntaxError",
    "Step",
    "parse_sequence",
    "render_sequence",
]


class Arrow(str, enum.Enum):
    """The kinds of message, by the arrow that writes them."""

    CALL = "->"
    REPLY = "-->"
    RAISE = "--x"


@dataclass(frozen=True)
class Participant:
    """A column: ``name`` is used in statements, ``label`` is shown."""

    name: str
    label: str


@dataclass(frozen=True)
class Message:
    """An arrow from ``source`` to ``target`` (the same participant for a step within one)."""

    line: int
    source: str
    target: str
    arrow: Arrow
    label: str


@dataclass(frozen=True)
class Note:
    """A note spanning the columns ``first`` to ``last`` (equal for a note over one)."""

    line: int
    first: str
    last: str
    text: str


@dataclass(frozen=True)
class FrameStart:
    """The start of a ``loop`` or ``opt`` frame."""

    line: int
    kind: str
    label: str


@dataclass(frozen=True)
class FrameEnd:
    """The ``end`` of the innermost open frame."""

    line: int


Step = Message | Note | FrameStart | FrameEnd


@dataclass(frozen=True)
class SequenceDiagram:
    """A parsed diagram: its columns and its steps, top to bottom."""

    participants: tuple[Participant, ...]
    steps: tuple[Step, ...] = field(default=())


class SequenceSyntaxError(ValueError):
    """A statement of a sequence diagram could not be read; ``line`` is 1-based within the text."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"line {line}: {problem}")


_NAME = r"[A-Za-z_][\w-]*"
_PARTICIPANT_RE: Final = re.compile(rf"^participant\s+({_NAME})\s*(?::\s*(.*))?$")
_MESSAGE_RE: Final = re.compile(rf"^({_NAME})\s*(-->|--x|->)\s*({_NAME})\s*:\s*(.*)$")
_NOTE_RE: Final = re.compile(rf"^note\s+over\s+({_NAME})\s*(?:,\s*({_NAME})\s*)?:\s*(.*)$")
_FRAME_RE: Final = re.compile(r"^(loop|opt)\b\s*(.*)$")
_EXPECTED: Final = (
    "expected 'participant NAME[: label]', 'A -> B: text', 'A --> B: text', 'A --x B: text', "
    "'note over A[, B]: text', 'loop TEXT', 'opt TEXT' or 'end'"
)


def _label(raw: str) -> str:
    return raw.strip().replace("\\n", "\n")


def parse_sequence(text: str) -> SequenceDiagram:
    """Read the statements in ``text`` (see the module docstring for the syntax).

    :raises SequenceSyntaxError: for an unreadable statement, an undeclared or twice-declared participant,
        an ``end`` with no open frame or a frame left open, or a diagram without participants.
    """
    participants: list[Participant] = []
    steps: list[Step] = []
    open_frames: list[FrameStart] = []

    def known(name: str, line: int) -> str:
        if name not in {p.name for p in participants}:
            declared = ", ".join(p.name for p in participants) or "none"
            raise SequenceSyntaxError(
                line, f"unknown participant {name!r}; declared so far: {declared} (declare it first)"
            )
        return name

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := _PARTICIPANT_RE.match(line):
            name, label = m.group(1), m.group(2)
            if any(p.name == name for p in participants):
                raise SequenceSyntaxError(number, f"participant {name!r} is declared twice")
            participants.append(Participant(name, _label(label) if label else name))
        elif m := _MESSAGE_RE.match(line):
            source, arrow, target, label = m.groups()
            steps.append(
                Message(number, known(source, number), known(target, number), Arrow(arrow), _label(label))
            )
        elif m := _NOTE_RE.match(line):
            first, last, note = m.groups()
            known(first, number)
            steps.append(Note(number, first, known(last or first, number), _label(note)))
        elif m := _FRAME_RE.match(line):
            frame = FrameStart(number, m.group(1), _label(m.group(2)))
            open_frames.append(frame)
            steps.append(frame)
        elif line == "end":
            if not open_frames:
                raise SequenceSyntaxError(number, "'end' without an open 'loop' or 'opt'")
            open_frames.pop()
            steps.append(FrameEnd(number))
        else:
            raise SequenceSyntaxError(number, f"cannot read {line!r}; {_EXPECTED}")
    if open_frames:
        frame = open_frames[-1]
        raise SequenceSyntaxError(frame.line, f"'{frame.kind}' is never closed with 'end'")
    if not participants:
        raise SequenceSyntaxError(1, "a sequence diagram needs at least one 'participant'")
    return SequenceDiagram(tuple(participants), tuple(steps))


# ---------------------------------------------------------------------------------------------- layout

_MARGIN: Final = 12.0
_BOX_HEIGHT: Final = 30.0
_BOX_PADDING: Final = 14.0
_BOX_MIN_WIDTH: Final = 84.0
_COLUMN_GAP: Final = 28.0
_LABEL_PADDING: Final = 16.0
_SELF_WIDTH: Final = 26.0
_SELF_HEIGHT: Final = 16.0
_NOTE_PADDING: Final = 8.0
_FRAME_INSET: Final = 8.0
_FRAME_TAB: Final = 20.0

_CALL_COLOUR: Final = INK
_RAISE_COLOUR: Final = "#cf222e"
_BOX_FILL: Final = "#f6f8fa"
_NOTE_FILL: Final = "#fff8c5"
_NOTE_STROKE: Final = "#bf8700"
_FRAME_FILL: Final = "#f6f8fa"


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _nesting(diagram: SequenceDiagram) -> int:
    """How deeply frames nest (0 without frames)."""
    depth = deepest = 0
    for step in diagram.steps:
        depth += 1 if isinstance(step, FrameStart) else -1 if isinstance(step, FrameEnd) else 0
        deepest = max(deepest, depth)
    return deepest


def _columns(diagram: SequenceDiagram) -> tuple[list[float], list[float], float]:
    """Lifeline x positions, box widths and the canvas width: the tightest layout where nothing overlaps.

    Every need is "column j is at least d right of column i" (i < j) or room at an edge, so one left-to-right
    pass settles it.
    """
    names = [p.name for p in diagram.participants]
    index = {n: i for i, n in enumerate(names)}
    count = len(names)
    widths = [max(_BOX_MIN_WIDTH, text_width(p.label) + 2 * _BOX_PADDING) for p in diagram.participants]
    need: dict[tuple[int, int], float] = {}
    left_room = widths[0] / 2
    right_room = widths[-1] / 2

    def require(i: int, j: int, distance: float) -> None:
        need[i, j] = max(need.get((i, j), 0.0), distance)

    for i in range(count - 1):
        require(i, i + 1, (widths[i] + widths[i + 1]) / 2 + _COLUMN_GAP)
    for step in diagram.steps:
        if isinstance(step, Message):
            a, b = sorted((index[step.source], index[step.target]))
            label = text_width(step.label) + 2 * _LABEL_PADDING
            if a != b:
                require(a, b, label)
            elif a + 1 < count:
                require(a, a + 1, _SELF_WIDTH + label + _COLUMN_GAP / 2)
            else:
                right_room = max(right_room, _SELF_WIDTH + label)
        elif isinstance(step, Note):
            a, b = sorted((index[step.first], index[step.last]))
            half = (text_width(step.text) + 2 * _NOTE_PADDING) / 2
            if a == b:
                if a > 0:
                    require(a - 1, a, half + _COLUMN_GAP / 2)
                if a + 1 < count:
                    require(a, a + 1, half + _COLUMN_GAP / 2)
                left_room = max(left_room, half) if a == 0 else left_room
                right_room = max(right_room, half) if a == count - 1 else right_room
            else:
                require(a, b, 2 * half - 2 * _COLUMN_GAP)
    frame_room = _nesting(diagram) * _FRAME_INSET  # frames stick out past the outer boxes
    left_room += frame_room
    right_room += frame_room
    xs = [_MARGIN + left_room]
    for j in range(1, count):
        xs.append(max(xs[i] + d for (i, k), d in need.items() if k == j))
    frame_labels = [
        text_width(f"{s.kind} [{s.label}]") + 2 * _FRAME_TAB
        for s in diagram.steps
        if isinstance(s, FrameStart)
    ]
    span = xs[-1] - xs[0] + left_room + right_room
    if frame_labels and max(frame_labels) > span:
        right_room += max(frame_labels) - span
    return xs, widths, xs[-1] + right_room + _MARGIN


def _message_svg(step: Message, x1: float, x2: float, y: float) -> tuple[str, float]:
    """The arrow for ``step`` with its label above; returns the SVG and the height used below ``y``."""
    colour = _RAISE_COLOUR if step.arrow is Arrow.RAISE else _CALL_COLOUR
    dash = None if step.arrow is Arrow.CALL else "5,4"
    open_head = step.arrow is Arrow.REPLY
    label_height = _lines(step.label) * LINE_HEIGHT
    parts = [element("title", text=f"{step.source} {step.arrow.value} {step.target}: {step.label}")]
    if x1 != x2:
        arrow_y = y + label_height + 4
        parts.append(text_block(step.label, (x1 + x2) / 2, y + LINE_HEIGHT - 3, fill=colour, halo=True))
        direction = 1.0 if x2 > x1 else -1.0
        tip = x2 - direction
        line_attrs: Attrs = {
            "x1": x1,
            "y1": arrow_y,
            "x2": tip - direction * 4,
            "y2": arrow_y,
            "stroke": colour,
            "stroke-width": 1.3,
            "stroke-dasharray": dash,
        }
        parts.append(element("line", line_attrs))
        parts.append(arrowhead((tip, arrow_y), (direction, 0.0), fill=colour, open_=open_head))
        used = label_height + 4 + 14
    else:
        top = y + 4
        bottom = top + _SELF_HEIGHT
        path = f"M{x1},{top} H{x1 + _SELF_WIDTH} V{bottom} H{x1 + 5}"
        parts.append(
            element(
                "path",
                {"d": path, "fill": "none", "stroke": colour, "stroke-width": 1.3, "stroke-dasharray": dash},
            )
        )
        parts.append(arrowhead((x1 + 1, bottom), (-1.0, 0.0), fill=colour, open_=open_head))
        parts.append(
            text_block(step.label, x1 + _SELF_WIDTH + 6, top + 11, anchor="start", fill=colour, halo=True)
        )
        used = max(_SELF_HEIGHT + 4, label_height) + 14
    kind = {Arrow.CALL: "call", Arrow.REPLY: "reply", Arrow.RAISE: "raise"}[step.arrow]
    attrs = {"class": "message", "data-source": step.source, "data-target": step.target, "data-kind": kind}
    return element("g", attrs, parts), used


def _note_svg(step: Note, left: float, right: float, y: float) -> tuple[str, float]:
    height = _lines(step.text) * LINE_HEIGHT + 2 * _NOTE_PADDING - 4
    box: Attrs = {
        "x": left,
        "y": y,
        "width": right - left,
        "height": height,
        "fill": _NOTE_FILL,
        "stroke": _NOTE_STROKE,
        "stroke-width": 1,
    }
    text = text_block(step.text, (left + right) / 2, y + _NOTE_PADDING + 9)
    return element("g", {"class": "note"}, [element("rect", box), text]), height + 10


def render_sequence(diagram: SequenceDiagram, *, title: str = "Sequence diagram") -> str:
    """The diagram as a standalone ``<svg>`` element.

    Each participant is a ``<g class="participant" data-participant="...">``, each message a
    ``<g class="message" data-source="..." data-target="..." data-kind="call|reply|raise">``, each note a
    ``<g class="note">`` and each frame a ``<g class="frame" data-kind="loop|opt">``; the ``<desc>``
    tells the steps in words.
    """
    xs, widths, width = _columns(diagram)
    x_of = {p.name: xs[i] for i, p in enumerate(diagram.participants)}
    w_of = {p.name: widths[i] for i, p in enumerate(diagram.participants)}
    first_x, last_x = xs[0] - widths[0] / 2, xs[-1] + widths[-1] / 2
    y = _MARGIN + _BOX_HEIGHT + 14
    foreground: list[str] = []
    frames: list[tuple[int, str]] = []  # (nesting level, drawing): outer frames are drawn first
    deepest = _nesting(diagram)
    open_frames: list[tuple[FrameStart, float]] = []
    words: list[str] = []

    for step in diagram.steps:
        if isinstance(step, Message):
            svg, used = _message_svg(step, x_of[step.source], x_of[step.target], y)
            words.append(f"{step.source} to {step.target}: {step.label}")
        elif isinstance(step, Note):
            a, b = sorted((x_of[step.first], x_of[step.last]))
            half = (text_width(step.text) + 2 * _NOTE_PADDING) / 2
            if a == b:
                left, right = a - half, a + half
            else:
                left, right = a - _COLUMN_GAP, b + _COLUMN_GAP
                grow = max(0.0, (2 * half - (right - left)) / 2)
                left, right = left - grow, right + grow
            svg, used = _note_svg(step, left, right, y)
            words.append(f"note over {step.first}{'' if a == b else ' to ' + step.last}: {step.text}")
        elif isinstance(step, FrameStart):
            open_frames.append((step, y))
            words.append(f"{step.kind} {step.label}:")
            y += _FRAME_TAB + 8
            continue
        else:
            start, top = open_frames.pop()
            level = len(open_frames)  # 0 for an outermost frame, which is the widest
            inset = _FRAME_INSET * (deepest - level)
            left, right = first_x - inset, last_x + inset
            tab = text_width(start.kind) + 14
            bottom = y + 2
            parts = [
                element(
                    "rect",
                    {
                        "x": left,
                        "y": top,
                        "width": right - left,
                        "height": bottom - top,
                        "fill": _FRAME_FILL,
                        "fill-opacity": 0.55,
                        "stroke": MUTED,
                        "stroke-width": 1,
                    },
                ),
                element(
                    "path",
                    {
                        "d": f"M{left},{top + _FRAME_TAB} H{left + tab - 6} L{left + tab},{top + 14} V{top}",
                        "fill": "none",
                        "stroke": MUTED,
                        "stroke-width": 1,
                    },
                ),
                text_block(start.kind, left + 6, top + 14, anchor="start", weight="600"),
                text_block(
                    f"[{start.label}]" if start.label else "",
                    left + tab + 8,
                    top + 14,
                    anchor="start",
                    halo=True,
                ),
            ]
            frames.append((level, element("g", {"class": "frame", "data-kind": start.kind}, parts)))
            words.append("end of " + start.kind)
            y = bottom + 12
            continue
        foreground.append(svg)
        y += used

    lifeline_end = y + 4
    boxes: list[str] = []
    for p in diagram.participants:
        x, w = x_of[p.name], w_of[p.name]
        shapes = [
            element(
                "line",
                {
                    "x1": x,
                    "y1": _MARGIN + _BOX_HEIGHT,
                    "x2": x,
                    "y2": lifeline_end,
                    "stroke": MUTED,
                    "stroke-width": 1,
                    "stroke-dasharray": "3,4",
                },
            ),
        ]
        for top in (_MARGIN, lifeline_end):
            shapes.append(
                element(
                    "rect",
                    {
                        "x": x - w / 2,
                        "y": top,
                        "width": w,
                        "height": _BOX_HEIGHT,
                        "rx": 4,
                        "fill": _BOX_FILL,
                        "stroke": INK,
                        "stroke-width": 1.2,
                    },
                )
            )
            shapes.append(text_block(p.label, x, top + _BOX_HEIGHT / 2 + 4, weight="600"))
        boxes.append(element("g", {"class": "participant", "data-participant": p.name}, shapes))
    height = lifeline_end + _BOX_HEIGHT + _MARGIN
    who = ", ".join(p.label for p in diagram.participants)
    description = f"Participants: {who}. " + " ".join(f"{n}. {w}" for n, w in enumerate(words, start=1))
    return document(
        width,
        height,
        title=title,
        description=description,
        body=[*(drawing for _, drawing in sorted(frames, key=lambda f: f[0])), *boxes, *foreground],
        css_class="lmstream-diagram lmstream-sequence-diagram",
    )
