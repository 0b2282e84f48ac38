"""Every public name of the three packages is documented in the API reference, under its public path.

The docs are read once with Sphinx's ``dummy`` builder (no output written; a few seconds), and the
Python objects the API pages declare are compared with each package's ``__all__``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import cast

import pytest
from sphinx.domains.python import PythonDomain

from docs.tests._sphinx import DOCS, Build, build

PACKAGES = ["lmstream.spec", "lmstream.reference", "lmstream.conformance"]


@pytest.fixture(scope="module")
def docs_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """The real docs, read from scratch into a temporary directory."""
    out: Path = tmp_path_factory.mktemp("docs")
    return build(DOCS, out, builder="dummy")


def _public_names(package: str) -> list[str]:
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        pytest.skip(f"{package} cannot be imported: {exc}")
    names: list[str] = list(getattr(module, "__all__", None) or [])
    if not names:
        pytest.skip(f"{package} has no public API yet: its __all__ is empty or absent")
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_documented(docs_build: Build, package: str) -> None:
    names = _public_names(package)
    domain = cast("PythonDomain", docs_build.app.env.get_domain("py"))
    missing = [name for name in names if f"{package}.{name}" not in domain.objects]
    assert missing == [], f"in {package}.__all__ but not in the API reference: {missing}"
    pages = {domain.objects[f"{package}.{name}"].docname for name in names}
    assert pages == {f"api/{package.rpartition('.')[2]}"}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_a_docstring(docs_build: Build, package: str) -> None:
    _public_names(package)
    undocumented = [
        line for line in docs_build.warnings.splitlines() if f"{package}." in line and "no docstring" in line
    ]
    assert undocumented == []
