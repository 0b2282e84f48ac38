"""The mutator makes exactly the changes its operators describe, as valid code, and names them stably."""

from __future__ import annotations

import ast
import hashlib
from collections import Counter

import pytest

import tools.mutation as package
from tools.mutation import MUTATED_FILES, OPERATORS, mutants_of, reference_mutants
from tools.mutation.mutants import REFERENCE_DIR, Mutant

SAMPLE = '''"""A module every operator has something to change in."""

import enum
from typing import TypeVar

__all__ = ["Colour", "run"]
T = TypeVar("T")


class Colour(enum.Enum):
    RED = 0
    GREEN = 1


def run(items, limit=3, *, strict=False):
    """Docstrings are never mutated."""
    assert limit >= 0  # nor are asserts
    total = 0
    for item in items:
        if item is None or item in (1, 2):
            continue
        if not strict and total < limit:
            total += item
        elif total == limit:
            break
        else:
            total = total - 1
            total = total * 2
    while total:
        total -= 1
        print("left", total)
    try:
        colour = Colour.RED if total else Colour.GREEN
        print(f"colour {colour}")  # f-strings are not mutated
    except (TypeError, ValueError) as exc:
        raise RuntimeError("bad") from exc
    except BaseException:
        raise
    finally:
        print("done", end="")
    return sorted(items, key=abs)


class Box:
    __slots__ = ("value",)

    def __repr__(self):
        return "Box()"
'''


def _mutants() -> list[Mutant]:
    return mutants_of(SAMPLE, "sample.py")


def _tree_of(source: str) -> str:
    return ast.dump(ast.parse(source))


def test_every_operator_is_listed_in_the_package_docstring() -> None:
    doc = package.__doc__ or ""
    assert all(f"``{name}``" in doc for name in OPERATORS)
    assert len(OPERATORS) >= 15


def test_every_operator_has_something_to_change_in_the_sample() -> None:
    assert set(Counter(m.operator for m in _mutants())) == set(OPERATORS)


def test_each_text_edit_makes_exactly_the_change_made_to_the_tree() -> None:
    tree = ast.parse(SAMPLE)
    for mutant in _mutants():
        mutated = mutant.apply(SAMPLE)
        assert _tree_of(mutated) == ast.dump(mutant.apply_tree(tree)), mutant.id
        assert _tree_of(mutated) != _tree_of(SAMPLE), mutant.id
        assert len(mutated.splitlines()) == len(SAMPLE.splitlines()), mutant.id  # line numbers kept


@pytest.mark.parametrize(
    "expected",
    [
        "sample.py::run::compare::total < limit => total >= limit",
        "sample.py::run::identity::item is None => item is not None",
        "sample.py::run::identity::item in (1, 2) => item not in (1, 2)",
        "sample.py::run::and_or::not strict and total < limit => not strict or total < limit",
        "sample.py::run::not::not strict => strict",
        "sample.py::run::bool::False => True",
        "sample.py::run::condition::total => not total",
        "sample.py::run::statement::total += item => pass",
        "sample.py::run::statement::continue => pass",
        "sample.py::run::block::while total: total -= 1; print('left', total) => while total: pass",
        "sample.py::run::return_none::sorted(items, key=abs) => None",
        "sample.py::run::broaden::(TypeError, ValueError) => BaseException",
        "sample.py::run::narrow::(TypeError, ValueError) => TypeError",
        "sample.py::run::narrow::BaseException => Exception",
        "sample.py::run::narrow::except BaseException: raise => (handler removed)",
        "sample.py::run::enum::Colour.RED => Colour.GREEN",
        "sample.py::run::number::3 => 4",
        "sample.py::run::number::3 => 0",
        "sample.py::Colour::number::0 => 1",
        "sample.py::run::string::'left' => ''",
        "sample.py::run::string::'' => 'mutant'",
        "sample.py::run::argument::sorted(items, key=abs) => sorted(items)",
        "sample.py::run::argument::sorted(items, key=abs) => sorted(key=abs)",
    ],
)
def test_the_sample_has_these_mutants(expected: str) -> None:
    assert expected in {m.id for m in _mutants()}


def test_what_is_never_mutated_is_left_alone() -> None:
    ids = [m.id for m in _mutants()]
    for untouched in ("Docstrings", "assert", "limit >= 0", "__all__", "__slots__", "TypeVar", "Box()"):
        assert not [i for i in ids if untouched in i], untouched
    assert not [i for i in ids if "import" in i]
    # The f-string is deleted or dropped with its statement or call, never changed itself.
    assert not [m.id for m in _mutants() if m.original.startswith("f'") or m.mutated.startswith("f'")]


def test_ids_are_unique_and_do_not_move_when_code_is_added_above() -> None:
    before = [m.id for m in _mutants()]
    assert len(before) == len(set(before))
    grown = SAMPLE.replace("def run(", "def other(x):\n    return x\n\n\ndef run(")
    after = {m.id for m in mutants_of(grown, "sample.py")}
    assert set(before) <= after
    assert {i for i in after - set(before) if "::other::" not in i} == set()


def test_repeated_changes_in_one_function_are_numbered() -> None:
    source = "def f(x):\n    g(x)\n    g(x)\n"
    ids = [m.id for m in mutants_of(source, "m.py") if m.operator == "statement"]
    assert ids == ["m.py::f::statement::g(x) => pass", "m.py::f::statement::g(x) => pass #2"]


def test_a_long_node_is_shortened_with_a_hash_of_the_whole() -> None:
    call = "f(" + ", ".join(f"argument_{i}" for i in range(20)) + ")"
    (mutant, *_) = [m for m in mutants_of(f"def g():\n    {call}\n", "m.py") if m.operator == "statement"]
    digest = hashlib.sha1(call.encode()).hexdigest()[:8]
    assert mutant.original.startswith("f(argument_0, ") and mutant.original.endswith(f"... [{digest}]")
    assert len(mutant.original) <= 100


def test_the_reference_mutants_are_valid_code_of_the_three_files() -> None:
    mutants = reference_mutants()
    assert {m.file for m in mutants} == set(MUTATED_FILES)
    assert len({m.id for m in mutants}) == len(mutants)
    sources = {name: (REFERENCE_DIR / name).read_text(encoding="utf-8") for name in MUTATED_FILES}
    for mutant in mutants:
        compile(mutant.apply(sources[mutant.file]), mutant.file, "exec")


def test_a_sample_of_the_reference_mutants_makes_exactly_the_tree_change() -> None:
    sources = {name: (REFERENCE_DIR / name).read_text(encoding="utf-8") for name in MUTATED_FILES}
    trees = {name: ast.parse(source) for name, source in sources.items()}
    for mutant in reference_mutants()[::10]:
        assert _tree_of(mutant.apply(sources[mutant.file])) == ast.dump(mutant.apply_tree(trees[mutant.file]))


def test_a_module_that_does_not_parse_is_refused() -> None:
    with pytest.raises(SyntaxError):
        mutants_of("def f(:\n", "m.py")
