"""Keywords and requirement IDs found in registry text and docstrings, and nowhere else."""

from __future__ import annotations

from docs._ext.spectext import link_requirement_ids, split_spec_text


def test_split_spec_text_finds_keywords_and_ids() -> None:
    text = "A manager MUST NOT do X (SM-21); it SHOULD, but a must or MAYBE is not a keyword. ES-10."
    assert split_spec_text(text) == [
        ("text", "A manager "),
        ("keyword", "MUST NOT"),
        ("text", " do X ("),
        ("id", "SM-21"),
        ("text", "); it "),
        ("keyword", "SHOULD"),
        ("text", ", but a must or MAYBE is not a keyword. "),
        ("id", "ES-10"),
        ("text", "."),
    ]


def test_ids_in_docstrings_become_links_outside_code() -> None:
    lines = [
        "Keeps SM-1 to SM-17 and ES-4.",
        "Literal ``SM-3``, role :req:`SM-8` and `SM-9` stay.",
        "Example::",
        "",
        "    ES-3 failed",
        "Back to ES-1.",
        '>>> print("SM-2")',
        "SM-2",
        "",
        "After SM-5, not test_SM_5 or XSM-5.",
    ]
    link_requirement_ids(lines)
    assert lines == [
        "Keeps :req:`SM-1` to :req:`SM-17` and :req:`ES-4`.",
        "Literal ``SM-3``, role :req:`SM-8` and `SM-9` stay.",
        "Example::",
        "",
        "    ES-3 failed",
        "Back to :req:`ES-1`.",
        '>>> print("SM-2")',
        "SM-2",
        "",
        "After :req:`SM-5`, not test_SM_5 or XSM-5.",
    ]
