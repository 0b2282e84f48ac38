"""Small SVG building blocks shared by the diagram renderers: text metrics, escaping, elements.

No Sphinx, no system package, no font engine: every diagram uses one monospace font, so a label's width is
its length times :data:`CHAR_WIDTH`, which is exact enough to lay text out without measuring it. Drawings
carry their colours as attributes (no stylesheet), so they look the same in any theme and when saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "CHAR_WIDTH",
    "FONT_FAMILY",
    "FONT_SIZE",
    "INK",
    "LINE_HEIGHT",
    "MUTED",
    "Attrs",
    "Point",
    "arrowhead",
    "document",
    "element",
    "fmt",
    "text_block",
    "text_width",
]

FONT_SIZE: Final = 12.0
"""Font size of every label, in pixels."""
CHAR_WIDTH: Final = 7.3
"""Advance width of one character of the monospace font at :data:`FONT_SIZE` (0.6 em, rounded up)."""
LINE_HEIGHT: Final = 15.0
"""Distance between the baselines of two lines of a label."""
FONT_FAMILY: Final = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"

INK: Final = "#1f2328"
"""Colour of lines and text."""
MUTED: Final = "#57606a"
"""Colour of secondary lines (lifelines, frames)."""

Point = tuple[float, float]
Attrs = Mapping[str, "str | float | int | None"]
"""Element attributes: ``None`` leaves an attribute out; numbers are formatted with :func:`fmt`."""


def fmt(value: float) -> str:
    """A coordinate as SVG text: at most one decimal, no trailing ``.0``, never ``-0``."""
    text = f"{round(value, 1):.1f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def text_width(text: str) -> float:
    """Width in pixels of ``text`` (its longest line) in the diagram font."""
    return max((len(line) for line in text.split("\n")), default=0) * CHAR_WIDTH


def element(tag: str, attrs: Attrs | None = None, children: Iterable[str] = (), *, text: str = "") -> str:
    """One XML element. Attribute values are escaped, ``None`` values left out, numbers formatted.

    ``text`` is escaped; ``children`` are already-serialised elements, inserted as they are.
    """
    parts = [tag]
    for name, value in (attrs or {}).items():
        if value is None:
            continue
        shown = fmt(value) if isinstance(value, (int, float)) else value
        parts.append(f"{name}={quoteattr(shown)}")
    body = escape(text) + "".join(children)
    head = " ".join(parts)
    return f"<{head}>{body}</{tag}>" if body else f"<{head}/>"


def text_block(
    text: str,
    x: float,
    y: float,
    *,
    anchor: str = "middle",
    fill: str = INK,
    weight: str | None = None,
    halo: bool = False,
) -> str:
    """A possibly multi-line label (lines split on ``\\n``) whose first baseline is at ``y``.

    ``halo`` outlines the glyphs in white, so a label stays readable where it crosses a line.
    """
    lines = text.split("\n")
    attrs: dict[str, str | float | None] = {
        "x": x,
        "y": y,
        "text-anchor": anchor,
        "fill": fill,
        "font-weight": weight,
        "font-family": FONT_FAMILY,
        "font-size": FONT_SIZE,
    }
    if halo:
        attrs.update(
            {"stroke": "#ffffff", "stroke-width": 4, "stroke-linejoin": "round", "paint-order": "stroke"}
        )
    if len(lines) == 1:
        return element("text", attrs, text=text)
    spans = [
        element("tspan", {"x": x, "dy": 0 if i == 0 else LINE_HEIGHT}, text=line)
        for i, line in enumerate(lines)
    ]
    return element("text", attrs, spans)


def arrowhead(
    tip: Point, direction: Point, *, size: float = 8.0, fill: str = INK, open_: bool = False
) -> str:
    """An arrowhead whose point is ``tip``, pointing along ``direction`` (any non-zero vector).

    Filled (a triangle) by default; ``open_`` draws the two strokes of a chevron instead.
    """
    dx, dy = direction
    length = (dx * dx + dy * dy) ** 0.5
    if length == 0:
        raise ValueError("an arrowhead needs a non-zero direction")
    ux, uy = dx / length, dy / length
    bx, by = tip[0] - ux * size, tip[1] - uy * size
    half = size * 0.45
    left = (bx - uy * half, by + ux * half)
    right = (bx + uy * half, by - ux * half)
    points = " ".join(f"{fmt(px)},{fmt(py)}" for px, py in (left, tip, right))
    if open_:
        return element("polyline", {"points": points, "fill": "none", "stroke": fill, "stroke-width": 1.3})
    return element("polygon", {"points": points, "fill": fill, "stroke": fill, "stroke-width": 1})


def document(
    width: float, height: float, *, title: str, description: str, body: Sequence[str], css_class: str
) -> str:
    """A complete, standalone ``<svg>`` element sized ``width`` x ``height`` that scales down to fit.

    ``title`` is the accessible name (shown as a tooltip), ``description`` the text alternative.
    """
    attrs: dict[str, str | float] = {
        "xmlns": "http://www.w3.org/2000/svg",
        "class": css_class,
        "role": "img",
        "width": width,
        "height": height,
        "viewBox": f"0 0 {fmt(width)} {fmt(height)}",
        "style": "max-width: 100%; height: auto",
    }
    return element("svg", attrs, [element("title", text=title), element("desc", text=description), *body])
