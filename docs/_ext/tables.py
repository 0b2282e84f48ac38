"""Build a docutils table from rows of nodes: the one table helper the directives share."""

from __future__ import annotations

from collections.abc import Sequence

from docutils import nodes
from docutils.nodes import Node

__all__ = ["table"]


def _entry(content: Node | str) -> nodes.entry:
    entry = nodes.entry()
    if isinstance(content, str):
        entry += nodes.paragraph(content, content)
    elif isinstance(content, (nodes.Inline, nodes.Text)):
        entry += nodes.paragraph("", "", content)
    else:
        entry += content
    return entry


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Node | str]],
    *,
    widths: Sequence[int] | None = None,
    classes: Sequence[str] = (),
    row_classes: Sequence[Sequence[str]] | None = None,
) -> nodes.table:
    """A table with one header row. A cell is a string, an inline node (wrapped in a paragraph) or a body
    element; ``widths`` are relative column widths; ``row_classes[i]`` are HTML classes for row ``i``.

    :raises ValueError: if a row, ``widths`` or ``row_classes`` does not match the header's length.
    """
    columns = len(header)
    if widths is not None and len(widths) != columns:
        raise ValueError(f"{len(widths)} widths for {columns} columns")
    if row_classes is not None and len(row_classes) != len(rows):
        raise ValueError(f"{len(row_classes)} row classes for {len(rows)} rows")
    result = nodes.table(classes=list(classes))
    group = nodes.tgroup(cols=columns)
    result += group
    for width in widths or [1] * columns:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head_row = nodes.row()
    for title in header:
        head_row += _entry(title)
    head += head_row
    group += head
    body = nodes.tbody()
    for i, cells in enumerate(rows):
        if len(cells) != columns:
            raise ValueError(f"row {i} has {len(cells)} cells for {columns} columns")
        row = nodes.row(classes=list(row_classes[i]) if row_classes else [])
        for cell in cells:
            row += _entry(cell)
        body += row
    group += body
    return result
