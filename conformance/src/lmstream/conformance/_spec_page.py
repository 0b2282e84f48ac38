"""The spec as one standalone HTML page, rendered from the installed registry (``REQUIREMENTS``).

It is what a failure's ``spec:`` link opens when no documentation site is configured: every requirement in
its section, under an ``id`` that is its anchor (``es-3``), with its level, title, condition, statement and
rationale; RFC 2119 keywords in bold, requirement IDs linked. No script, no style sheet, no network.
"""

from __future__ import annotations

import re
from html import escape
from typing import Final

from lmstream.spec import REQUIREMENTS, SPEC_VERSION, Requirement

__all__ = ["render_spec_page"]

_KEYWORDS: Final = ("MUST NOT", "MUST", "SHALL NOT", "SHALL", "SHOULD NOT", "SHOULD", "NOT RECOMMENDED")
_MORE_KEYWORDS: Final = ("RECOMMENDED", "REQUIRED", "MAY", "OPTIONAL")
_TEXT_RE: Final = re.compile(
    r"(?P<id>\b(?:ES|SM)-[1-9][0-9]*\b)"
    r"|(?<![A-Za-z])(?P<keyword>" + "|".join((*_KEYWORDS, *_MORE_KEYWORDS)) + r")(?![A-Za-z])"
)
_STYLE: Final = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;color:#1f2328}"
    "section{border-top:1px solid #d0d7de;padding:.2em 0}h3{margin:.6em 0 .2em}"
    ".level{font-size:.85em;color:#57606a}.rationale,.condition{color:#57606a}"
)


def _marked_up(text: str) -> str:
    """``text`` as HTML: keywords in ``<strong>``, IDs of known requirements linked to their anchors."""
    out: list[str] = []
    position = 0
    for match in _TEXT_RE.finditer(text):
        out.append(escape(text[position : match.start()]))
        word = match.group(0)
        if match.group("keyword"):
            out.append(f"<strong>{word}</strong>")
        elif word in REQUIREMENTS:
            out.append(f'<a href="#{REQUIREMENTS[word].anchor}">{word}</a>')
        else:
            out.append(escape(word))
        position = match.end()
    out.append(escape(text[position:]))
    return "".join(out)


def _section(requirement: Requirement) -> list[str]:
    lines = [
        f'<section id="{requirement.anchor}">',
        f'<h3><a href="#{requirement.anchor}">{requirement.id}</a> {escape(requirement.title)} '
        f'<span class="level">{requirement.level.value}</span></h3>',
    ]
    if requirement.condition:
        lines.append(f'<p class="condition">{_marked_up(requirement.condition)}</p>')
    lines += [
        f"<p>{_marked_up(requirement.statement)}</p>",
        f'<p class="rationale">Rationale: {_marked_up(requirement.rationale)}</p>',
        "</section>",
    ]
    return lines


def render_spec_page() -> str:
    """The page: a title with :data:`~lmstream.spec.SPEC_VERSION`, then each group's requirements."""
    title = f"lmstream specification {SPEC_VERSION}"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p>The {len(REQUIREMENTS)} requirements of the installed <code>lmstream-spec</code>, rendered from "
        "its registry by <code>lmstream-conformance</code> for the links in its reports. The key words "
        "MUST, SHOULD and MAY are to be read as described in RFC 2119.</p>",
    ]
    group = None
    for requirement in REQUIREMENTS.values():
        if requirement.group is not group:
            group = requirement.group
            lines.append(f"<h2>{escape(group.heading)}</h2>")
        lines += _section(requirement)
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"
