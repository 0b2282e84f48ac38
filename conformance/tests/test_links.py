"""A failure's spec link opens a page that exists: by default one rendered from the installed registry."""

from __future__ import annotations

import html
import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from lmstream.conformance import (
    DOCS_BASE_ENV,
    TargetKind,
    format_failure,
    local_spec_page,
    run_checks,
    spec_url,
)
from lmstream.spec import REQUIREMENTS, SPEC_VERSION

from ._engines import YieldsBytes


def _page_of(url: str) -> tuple[Path, str]:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(url2pathname(parsed.path)), parsed.fragment


def _plain(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(DOCS_BASE_ENV, raising=False)
    return tmp_path / "cache"


@pytest.mark.usefixtures("cache")
@pytest.mark.parametrize("rid", list(REQUIREMENTS))
def test_every_link_opens_the_rule_it_names(rid: str) -> None:
    path, anchor = _page_of(spec_url(rid))
    requirement = REQUIREMENTS[rid]
    assert path.name == "spec.html" and anchor == requirement.anchor
    page = path.read_text(encoding="utf-8")
    section = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.DOTALL)
    assert section is not None, f"no section {anchor!r} on {path}"
    text = _plain(section.group(1))
    for part in (requirement.id, requirement.title, requirement.statement, requirement.rationale):
        assert " ".join(part.split()) in text
    assert requirement.level.value in text


def test_the_page_is_whole_and_its_links_resolve(cache: Path) -> None:
    page = local_spec_page()
    assert page.is_relative_to(cache / "lmstream")
    assert page.parent.name.startswith(f"spec-{SPEC_VERSION}-")
    text = page.read_text(encoding="utf-8")
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    assert ids == {r.anchor for r in REQUIREMENTS.values()}
    assert set(re.findall(r'href="#([^"]+)"', text)) <= ids
    assert "<script" not in text and "://" not in text  # it loads nothing and links nothing outside
    assert f"<title>lmstream specification {SPEC_VERSION}</title>" in text


def test_a_failure_links_the_page(cache: Path) -> None:
    report = run_checks(TargetKind.ENGINE, YieldsBytes(), select="ES-2", timeout=2.0)
    [result] = report.results
    line = result.message.splitlines()[2]
    assert line.startswith("spec: file://")
    path, anchor = _page_of(line.removeprefix("spec: "))
    assert path.is_file() and path.is_relative_to(cache) and anchor == "es-2"


def test_the_variable_points_the_links_elsewhere(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DOCS_BASE_ENV, " https://docs.example.org/lmstream/ ")
    assert spec_url("SM-10") == "https://docs.example.org/lmstream/spec.html#sm-10"
    assert format_failure("ES-3", "two completions").splitlines()[2] == (
        "spec: https://docs.example.org/lmstream/spec.html#es-3"
    )
    assert not cache.exists()  # no page is written when the links go elsewhere
    monkeypatch.setenv(DOCS_BASE_ENV, "  ")  # blank: the default
    assert spec_url("SM-10").startswith("file://")


def test_a_missing_or_altered_page_is_written_again(cache: Path) -> None:
    page = local_spec_page()
    text = page.read_text(encoding="utf-8")
    page.write_text("<p>truncated")
    assert _page_of(spec_url("ES-1"))[0] == page and page.read_text(encoding="utf-8") == text
    page.unlink()
    spec_url("ES-1")
    assert page.read_text(encoding="utf-8") == text


@pytest.fixture
def unwritable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache directory is a file: nothing can be written there. Returns that file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.delenv(DOCS_BASE_ENV, raising=False)
    return blocker


def test_an_unwritable_cache_falls_back_to_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unwritable_cache: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path, _ = _page_of(spec_url("ES-2"))
    assert path.is_file() and path.is_relative_to(tmp_path / "tmp")
    assert path.parent.parent.name.startswith("lmstream")


def test_with_nowhere_to_write_the_link_says_so_instead(
    monkeypatch: pytest.MonkeyPatch, unwritable_cache: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(unwritable_cache))
    text = spec_url("ES-2")
    assert "file://" not in text and "\n" not in text
    assert text.startswith(f"ES-2 in lmstream-spec {SPEC_VERSION} (cannot write the local spec page (")
    assert text.endswith(f"; set {DOCS_BASE_ENV} to link docs)")
