"""The spec rendering: anchors per requirement, the :req: role, links in text, and the build's own checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs.tests._sphinx import Build, build
from lmstream.spec import REQUIREMENTS, Group, select_requirements

CONF = 'extensions = ["docs._ext.requirements"]\nnitpicky = True\n'


def _project(tmp_path: Path, body: str) -> Build:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(CONF)
    (src / "index.rst").write_text(body)
    return build(src, tmp_path / "out")


ALL = "Spec\n====\n\n.. lmstream-requirements::\n\n"


def test_each_requirement_has_its_anchor_and_the_role_links_to_it(tmp_path: Path) -> None:
    result = _project(
        tmp_path, ALL + "Links\n=====\n\n:req:`SM-8`, :req:`the lock rule <SM-12>`, :ref:`sm-8`.\n"
    )
    assert result.warnings == ""
    html = (result.outdir / "index.html").read_text()
    for requirement in REQUIREMENTS.values():
        assert f'id="{requirement.anchor}"' in html
        assert requirement.statement.split(" ")[0] in html
    assert re.search(r'href="#sm-8"[^>]*><span class="xref lmstream-req">SM-8</span>', html)
    assert re.search(r'href="#sm-12"[^>]*><span class="xref lmstream-req">the lock rule</span>', html)
    assert re.search(r'href="#sm-8"><span class="std std-ref">SM-8: ', html)


def test_requirements_are_in_the_inventory(tmp_path: Path) -> None:
    result = _project(tmp_path, ALL)
    domain = result.app.env.get_domain("lmstream")
    objects = {
        name: (doc, anchor) for name, _, kind, doc, anchor, _ in domain.get_objects() if kind == "requirement"
    }
    assert objects == {rid: ("index", r.anchor) for rid, r in REQUIREMENTS.items()}


def test_an_unknown_id_fails_where_it_is_written(tmp_path: Path) -> None:
    result = _project(tmp_path, ALL + "Bad: :req:`SM-999`.\n")
    assert re.search(r"index.rst:6: ERROR: :req: unknown requirement ID 'SM-999'", result.warnings)


def test_an_unrendered_group_is_reported(tmp_path: Path) -> None:
    result = _project(tmp_path, "Spec\n====\n\n.. lmstream-requirements::\n   :group: engine-stream\n")
    missing = {r.id for r in REQUIREMENTS.values() if r.group is not Group.ENGINE_STREAM}
    reported = set(
        re.findall(r"requirement ((?:ES|SM)-\d+) \(group [a-z-]+\) is not rendered", result.warnings)
    )
    assert reported == missing


def test_a_requirement_rendered_twice_is_reported(tmp_path: Path) -> None:
    body = ALL + "Again\n=====\n\n.. lmstream-requirements::\n   :group: round\n"
    result = _project(tmp_path, body)
    twice = set(re.findall(r"requirement ((?:ES|SM)-\d+) is rendered twice", result.warnings))
    assert twice == {r.id for r in select_requirements(group=Group.ROUND)}


def test_an_unknown_group_is_an_error(tmp_path: Path) -> None:
    result = _project(tmp_path, "Spec\n====\n\n.. lmstream-requirements::\n   :group: nonsense\n")
    assert "nonsense" in result.warnings and "ERROR" in result.warnings


@pytest.mark.parametrize("requirement_id", ["ES-3", "SM-24"])
def test_the_page_shows_level_statement_and_rationale(tmp_path: Path, requirement_id: str) -> None:
    result = _project(tmp_path, ALL)
    html = (result.outdir / "index.html").read_text()
    section = html[html.index(f'id="{requirement_id.lower()}"') :]
    section = section[: section.index("</section>")]
    requirement = REQUIREMENTS[requirement_id]
    assert f"lmstream-level-{requirement.level.value.lower().replace(' ', '-')}" in section
    plain = re.sub(r"<[^>]+>", "", section).replace("\u2019", "'")
    assert requirement.rationale.replace("\u2019", "'")[:40] in plain
    assert requirement.title in plain
    if requirement.condition:
        assert "Applies" in plain
