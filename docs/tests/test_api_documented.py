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
    """The package's ``__all__``. A package that cannot be imported, or declares no public name, fails:
    the three packages always have an API, so either is a broken install or a broken ``__init__``."""
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        pytest.fail(f"{package} cannot be imported: {exc}; expected it installed (make install)")
    names: object = getattr(module, "__all__", None)
    if not isinstance(names, (list, tuple)) or not names:
        pytest.fail(f"{package}.__all__ is {names!r}; expected a non-empty list of its public names")
    return [str(name) for name in cast("list[object] | tuple[object, ...]", names)]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_documented(docs_build: Build, package: str) -> None:
    names = _public_names(package)
    domain = cast("PythonDomain", docs_build.app.env.get_domain("py"))
    missing = [name for name in names if f"{package}.{name}" not in domain.objects]
    assert missing == [], f"in {package}.__all__ but not in the API reference: {missing}"
    pages = {domain.objects[f"{package}.{name}"].docname for name in names}
    assert pages == {f"api/{package.rpartition('.')[2]}"}


@pytest.mark.parametrize(
    ("package", "problem"),
    [
        ("lmstream.no_such_package", "cannot be imported"),
        ("docs.tests._no_public_names", "expected a non-empty list"),
        ("docs.tests", "expected a non-empty list"),  # a package with no __all__ at all
    ],
)
def test_a_package_without_a_public_api_fails_the_test(package: str, problem: str) -> None:
    with pytest.raises(pytest.fail.Exception, match=problem):
        _public_names(package)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_a_docstring(docs_build: Build, package: str) -> None:
    _public_names(package)
    undocumented = [
        line for line in docs_build.warnings.splitlines() if f"{package}." in line and "no docstring" in line
    ]
    assert undocumented == []
