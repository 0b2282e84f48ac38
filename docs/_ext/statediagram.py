"""Draw a state machine as SVG: a small layered (Sugiyama-style) layout, written out, no dependency.

Input is plain data, the states in a preferred order and the transitions as ``(source, target)`` pairs, so
the docs can pass :class:`lmstream.spec.StreamState` values and :data:`lmstream.spec.STATE_TRANSITIONS`
and the drawing always matches the table. The layout:

1. puts every state in a layer, the length of the longest path reaching it (start states on top);
2. splits a transition that skips layers with invisible waypoints, one per skipped layer;
3. orders each layer to minimise crossings: every ordering is tried when there are few (a lifecycle has a
   handful of states), else barycentre sweeps; ties go to the shorter drawing, then to the given order;
4. centres each layer and draws transitions as smooth curves through their waypoints.

States with no incoming transition get a start marker; states with no outgoing one a double border.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from .svg import INK, Point, arrowhead, document, element, fmt, text_block, text_width

__all__ = ["PlacedState", "PlacedTransition", "StateLayout", "layout_states", "render_state_diagram"]

_NODE_HEIGHT: Final = 34.0
_NODE_PADDING: Final = 18.0
_NODE_MIN_WIDTH: Final = 96.0
_WAYPOINT_WIDTH: Final = 30.0
_GAP: Final = 26.0
_LAYER_GAP: Final = 58.0
_MARGIN: Final = 16.0
_START_SPACE: Final = 34.0
_PORT_SPACING: Final = 16.0
_EXHAUSTIVE_LIMIT: Final = 5040
"""Try every ordering of every layer when there are at most this many combinations (7! for one layer)."""

_ACTIVE_FILL: Final = "#ddf4ff"
_ACTIVE_STROKE: Final = "#0969da"
_FINAL_FILL: Final = "#f6f8fa"


@dataclass(frozen=True)
class PlacedState:
    """A state box: centre ``x``, top ``y``, size, layer, and whether it starts or ends the machine."""

    name: str
    x: float
    y: float
    width: float
    height: float
    layer: int
    initial: bool
    terminal: bool


@dataclass(frozen=True)
class PlacedTransition:
    """A transition's route: the point it leaves ``source``, any waypoints, and the arrow's tip."""

    source: str
    target: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class StateLayout:
    """Where everything goes, in a ``width`` x ``height`` canvas; ``crossings`` counts crossing routes."""

    states: tuple[PlacedState, ...]
    transitions: tuple[PlacedTransition, ...]
    width: float
    height: float
    crossings: int


@dataclass(frozen=True)
class _Vertex:
    name: str | None  # None for a waypoint
    layer: int
    width: float


def _validate(states: Sequence[str], transitions: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if not states:
        raise ValueError("a state diagram needs at least one state")
    if len(set(states)) != len(states):
        raise ValueError(f"duplicate state names in {list(states)!r}")
    known = set(states)
    order = {s: i for i, s in enumerate(states)}
    edges: set[tuple[str, str]] = set()
    for source, target in transitions:
        for end in (source, target):
            if end not in known:
                known_list = list(states)
                raise ValueError(
                    f"transition {source!r} -> {target!r} names an unknown state {end!r}; known: {known_list}"
                )
        if source == target:
            raise ValueError(f"transition {source!r} -> {target!r}: staying in a state is not a transition")
        edges.add((source, target))
    return sorted(edges, key=lambda e: (order[e[0]], order[e[1]]))


def _layers(states: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering; a cycle is an error (a lifecycle only moves forward)."""
    preds: dict[str, list[str]] = {s: [] for s in states}
    indegree = dict.fromkeys(states, 0)
    for source, target in edges:
        preds[target].append(source)
        indegree[target] += 1
    layer: dict[str, int] = {}
    ready = [s for s in states if indegree[s] == 0]
    while ready:
        state = ready.pop(0)
        layer[state] = 1 + max((layer[p] for p in preds[state]), default=-1)
        for source, target in edges:
            if source == state:
                indegree[target] -= 1
                if indegree[target] == 0:
                    ready.append(target)
    if len(layer) != len(states):
        stuck = [s for s in states if s not in layer]
        raise ValueError(f"the transitions form a cycle through {stuck}; a lifecycle may only move forward")
    return layer


def _crossings(layers: Sequence[Sequence[int]], segments: Sequence[tuple[int, int]]) -> int:
    """How many pairs of segments between the same two layers cross (segments sharing an end do not)."""
    position = {v: i for layer in layers for i, v in enumerate(layer)}
    layer_of = {v: n for n, layer in enumerate(layers) for v in layer}
    count = 0
    for (a, b), (c, d) in itertools.combinations(segments, 2):
        if a == c or b == d or layer_of[a] != layer_of[c]:
            continue
        if (position[a] - position[c]) * (position[b] - position[d]) < 0:
            count += 1
    return count


def _centres(layers: Sequence[Sequence[int]], vertices: Sequence[_Vertex]) -> dict[int, float]:
    """Each layer laid out left to right and centred on x = 0."""
    x: dict[int, float] = {}
    for layer in layers:
        total = sum(vertices[v].width for v in layer) + _GAP * (len(layer) - 1)
        left = -total / 2
        for v in layer:
            x[v] = left + vertices[v].width / 2
            left += vertices[v].width + _GAP
    return x


def _spread(
    layers: Sequence[Sequence[int]], vertices: Sequence[_Vertex], segments: Sequence[tuple[int, int]]
) -> float:
    x = _centres(layers, vertices)
    return sum(abs(x[a] - x[b]) for a, b in segments)


def _all_orderings(layers: Sequence[Sequence[int]]) -> Iterator[list[list[int]]]:
    for combo in itertools.product(*(itertools.permutations(layer) for layer in layers)):
        yield [list(layer) for layer in combo]


def _barycentre_orderings(
    layers: Sequence[Sequence[int]], segments: Sequence[tuple[int, int]], sweeps: int = 8
) -> Iterator[list[list[int]]]:
    current = [list(layer) for layer in layers]
    up: dict[int, list[int]] = {}
    down: dict[int, list[int]] = {}
    for a, b in segments:
        down.setdefault(a, []).append(b)
        up.setdefault(b, []).append(a)
    yield [list(layer) for layer in current]
    for sweep in range(sweeps):
        indices = range(1, len(current)) if sweep % 2 == 0 else range(len(current) - 2, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        for i in indices:
            reference = current[i - 1] if sweep % 2 == 0 else current[i + 1]
            position = {v: p for p, v in enumerate(reference)}
            old = {v: p for p, v in enumerate(current[i])}

            def key(
                v: int,
                position: dict[int, int] = position,
                old: dict[int, int] = old,
                neighbours: dict[int, list[int]] = neighbours,
            ) -> tuple[float, int]:
                linked = [position[n] for n in neighbours.get(v, []) if n in position]
                return (sum(linked) / len(linked) if linked else float(old[v]), old[v])

            current[i].sort(key=key)
        yield [list(layer) for layer in current]


def _best_ordering(
    layers: Sequence[Sequence[int]], vertices: Sequence[_Vertex], segments: Sequence[tuple[int, int]]
) -> tuple[list[list[int]], int]:
    combinations = math.prod(math.factorial(len(layer)) for layer in layers)
    candidates = (
        _all_orderings(layers)
        if combinations <= _EXHAUSTIVE_LIMIT
        else _barycentre_orderings(layers, segments)
    )
    best: list[list[int]] | None = None
    best_score = (math.inf, math.inf)
    for candidate in candidates:
        score = (float(_crossings(candidate, segments)), round(_spread(candidate, vertices, segments), 3))
        if score < best_score:  # strictly better: the earliest (closest to the given order) wins ties
            best, best_score = candidate, score
    assert best is not None  # at least one candidate: the given order
    return best, int(best_score[0])


def _ports(centre: float, width: float, count: int) -> list[float]:
    if count <= 1:
        return [centre] * count
    spacing = min(_PORT_SPACING, (width - 2 * _NODE_PADDING) / (count - 1))
    return [centre + (i - (count - 1) / 2) * spacing for i in range(count)]


def layout_states(states: Sequence[str], transitions: Iterable[tuple[str, str]]) -> StateLayout:
    """Lay out ``states`` (in the preferred left-to-right order) joined by ``transitions``.

    :raises ValueError: for an unknown or duplicate state, a self-transition or a cycle, naming it.
    """
    edges = _validate(states, transitions)
    layer_of = _layers(states, edges)
    has_in = {target for _, target in edges}
    has_out = {source for source, _ in edges}

    vertices = [
        _Vertex(s, layer_of[s], max(_NODE_MIN_WIDTH, text_width(s) + 2 * _NODE_PADDING)) for s in states
    ]
    index = {s: i for i, s in enumerate(states)}
    chains: list[tuple[str, str, list[int]]] = []
    for source, target in edges:
        chain = [index[source]]
        for layer in range(layer_of[source] + 1, layer_of[target]):
            vertices.append(_Vertex(None, layer, _WAYPOINT_WIDTH))
            chain.append(len(vertices) - 1)
        chain.append(index[target])
        chains.append((source, target, chain))
    segments = [(a, b) for _, _, chain in chains for a, b in itertools.pairwise(chain)]

    depth = max(layer_of.values()) + 1
    layers: list[list[int]] = [
        [v for v, vertex in enumerate(vertices) if vertex.layer == i] for i in range(depth)
    ]
    ordering, crossings = _best_ordering(layers, vertices, segments)

    centre = _centres(ordering, vertices)
    left = min(centre[v] - vertices[v].width / 2 for v in centre)
    right = max(centre[v] + vertices[v].width / 2 for v in centre)
    shift = _MARGIN - left
    x = {v: c + shift for v, c in centre.items()}
    top = _MARGIN + (_START_SPACE if any(s not in has_in for s in states) else 0.0)

    def layer_top(layer: int) -> float:
        return top + layer * (_NODE_HEIGHT + _LAYER_GAP)

    # Ports: where each segment leaves the bottom of its upper vertex and enters the top of its lower one,
    # spread along the box in the left-to-right order of the other end, so arrows do not overlap.
    out_port: dict[tuple[int, int], float] = {}
    in_port: dict[tuple[int, int], float] = {}
    for v, vertex in enumerate(vertices):
        outgoing = sorted((s for s in segments if s[0] == v), key=lambda s: x[s[1]])
        incoming = sorted((s for s in segments if s[1] == v), key=lambda s: x[s[0]])
        out_port.update(zip(outgoing, _ports(x[v], vertex.width, len(outgoing)), strict=True))
        in_port.update(zip(incoming, _ports(x[v], vertex.width, len(incoming)), strict=True))

    placed_transitions: list[PlacedTransition] = []
    for source, target, chain in chains:
        points: list[Point] = [(out_port[chain[0], chain[1]], layer_top(layer_of[source]) + _NODE_HEIGHT)]
        for waypoint in chain[1:-1]:
            points.append((x[waypoint], layer_top(vertices[waypoint].layer) + _NODE_HEIGHT / 2))
        points.append((in_port[chain[-2], chain[-1]], layer_top(layer_of[target])))
        placed_transitions.append(PlacedTransition(source, target, tuple(points)))

    placed_states = tuple(
        PlacedState(
            name=s,
            x=x[i],
            y=layer_top(layer_of[s]),
            width=vertices[i].width,
            height=_NODE_HEIGHT,
            layer=layer_of[s],
            initial=s not in has_in,
            terminal=s not in has_out,
        )
        for i, s in enumerate(states)
    )
    return StateLayout(
        states=placed_states,
        transitions=tuple(placed_transitions),
        width=right - left + 2 * _MARGIN,
        height=layer_top(depth - 1) + _NODE_HEIGHT + _MARGIN,
        crossings=crossings,
    )


def _curve(points: Sequence[Point]) -> str:
    """A path through ``points`` with vertical tangents at each one (smooth at the waypoints)."""
    (x0, y0), *rest = points
    parts = [f"M{fmt(x0)},{fmt(y0)}"]
    px, py = x0, y0
    for qx, qy in rest:
        mid = (py + qy) / 2
        parts.append(f"C{fmt(px)},{fmt(mid)} {fmt(qx)},{fmt(mid)} {fmt(qx)},{fmt(qy)}")
        px, py = qx, qy
    return " ".join(parts)


def _state_svg(state: PlacedState) -> str:
    left = state.x - state.width / 2
    fill, stroke = (_FINAL_FILL, INK) if state.terminal else (_ACTIVE_FILL, _ACTIVE_STROKE)
    shapes = [element("title", text=state.name)]
    shapes.append(
        element(
            "rect",
            {
                "x": left,
                "y": state.y,
                "width": state.width,
                "height": state.height,
                "rx": 9,
                "fill": fill,
                "stroke": stroke,
                "stroke-width": 1.4,
            },
        )
    )
    if state.terminal:
        shapes.append(
            element(
                "rect",
                {
                    "x": left + 3,
                    "y": state.y + 3,
                    "width": state.width - 6,
                    "height": state.height - 6,
                    "rx": 6,
                    "fill": "none",
                    "stroke": stroke,
                    "stroke-width": 1,
                },
            )
        )
    if state.initial:
        dot_y = state.y - _START_SPACE + 6
        shapes.append(element("circle", {"cx": state.x, "cy": dot_y, "r": 5.5, "fill": INK}))
        shapes.append(
            element(
                "line",
                {
                    "x1": state.x,
                    "y1": dot_y,
                    "x2": state.x,
                    "y2": state.y - 2,
                    "stroke": INK,
                    "stroke-width": 1.3,
                },
            )
        )
        shapes.append(arrowhead((state.x, state.y), (0.0, 1.0)))
    shapes.append(text_block(state.name, state.x, state.y + state.height / 2 + 4, weight="600"))
    attrs = {
        "class": "state",
        "data-state": state.name,
        "data-initial": "true" if state.initial else None,
        "data-terminal": "true" if state.terminal else None,
    }
    return element("g", attrs, shapes)


def _transition_svg(transition: PlacedTransition) -> str:
    label = f"{transition.source} \u2192 {transition.target}"
    path = element(
        "path", {"d": _curve(transition.points), "fill": "none", "stroke": INK, "stroke-width": 1.3}
    )
    head = arrowhead(transition.points[-1], (0.0, 1.0))
    attrs = {"class": "transition", "data-source": transition.source, "data-target": transition.target}
    return element("g", attrs, [element("title", text=label), path, head])


def render_state_diagram(
    states: Sequence[str], transitions: Iterable[tuple[str, str]], *, title: str = "State diagram"
) -> str:
    """The state diagram as a standalone ``<svg>`` element (inline it in HTML or save it as a file).

    Every state is a ``<g class="state" data-state="...">`` and every transition a
    ``<g class="transition" data-source="..." data-target="...">``; the ``<desc>`` lists them in words.

    :raises ValueError: as :func:`layout_states` does.
    """
    layout = layout_states(states, transitions)
    starts = [s.name for s in layout.states if s.initial]
    ends = [s.name for s in layout.states if s.terminal]
    moves = "; ".join(f"{t.source} to {t.target}" for t in layout.transitions) or "none"
    description = (
        f"States: {', '.join(states)}. Start: {', '.join(starts)}. Terminal: {', '.join(ends) or 'none'}. "
        f"Transitions: {moves}."
    )
    body = [_transition_svg(t) for t in layout.transitions] + [_state_svg(s) for s in layout.states]
    return document(
        layout.width,
        layout.height,
        title=title,
        description=description,
        body=body,
        css_class="lmstream-diagram lmstream-state-diagram",
    )
