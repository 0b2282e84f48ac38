"""-k expressions select checks like pytest's, with exact requirement IDs."""

from __future__ import annotations

import pytest

from lmstream.conformance import SelectionError, TargetKind, checks_for, compile_selection


def _ids(expression: str) -> list[str]:
    keep = compile_selection(expression)
    return [c.requirement_id for c in checks_for(TargetKind.ENGINE) if keep(c)]


@pytest.mark.parametrize(
    ("expression", "ids"),
    [
        ("ES-1", ["ES-1"]),
        ("es_1", ["ES-1"]),
        ("ES-10", ["ES-10"]),
        ("ES_1_", ["ES-1"]),
        ("aclose", ["ES-5"]),
        ("ES-2 or ES-3", ["ES-2", "ES-3"]),
        ("(ES-2 or ES-3) and not ES-3", ["ES-2"]),
        ("not MUST", ["ES-9", "ES-10", "ES-11"]),
        ("SHOULD", ["ES-9", "ES-10"]),
        ("NOT MUST AND NOT SHOULD", ["ES-11"]),
        ("TOKEN", ["ES-2", "ES-4", "ES-9", "ES-10"]),
    ],
)
def test_expressions(expression: str, ids: list[str]) -> None:
    assert _ids(expression) == ids


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty expression"),
        ("ES-1 and", "unexpected end"),
        ("(ES-1", "unexpected end"),
        ("ES-1 )", "unexpected ')'"),
        ("and ES-1", "unexpected 'and'"),
        ("ES-1 ES-2", "unexpected 'ES-2'"),
    ],
)
def test_malformed_expressions(expression: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_selection(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("(" * 33 + "ES-1" + ")" * 33, "nest more than 32 deep"),
        ("not " * 33 + "ES-1", "nest more than 32 deep"),
        ("(" * 3000 + "ES-1" + ")" * 3000, "6001 words and parentheses, more than the 1000 allowed"),
    ],
)
def test_nesting_and_length_are_bounded(expression: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        compile_selection(expression)


def test_the_deepest_nesting_allowed_and_long_chains_work() -> None:
    assert _ids("(" * 32 + "ES-2" + ")" * 32) == ["ES-2"]
    assert _ids("not " * 31 + "ES-2") == [
        c.requirement_id for c in checks_for(TargetKind.ENGINE) if c.requirement_id != "ES-2"
    ]
    assert _ids(" or ".join(["ES-2"] * 499 + ["ES-3"])) == ["ES-2", "ES-3"]
    assert _ids(" and ".join(["MUST"] * 300 + ["ES-3"])) == ["ES-3"]
