"""lmstream-conformance runs with what it declares: the spec and pytest; not the reference nor pytest-asyncio.

The distribution's metadata lists neither, and the command and the plugin run with both made unimportable
(a directory first on ``PYTHONPATH`` whose ``lmstream/reference`` and ``pytest_asyncio`` raise
``ModuleNotFoundError``, inherited by every worker process the suite starts). The same, with a real
install: ``python -m venv /tmp/v && /tmp/v/bin/pip install ./spec ./conformance && /tmp/v/bin/lmstream
check engine lmstream.conformance.examples:EchoEngine --strict`` (see DEVELOPERS.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import requires
from pathlib import Path

import pytest

from lmstream.conformance import checks_for
from lmstream.conformance.model import TargetKind

_HIDDEN = ("lmstream.reference", "pytest_asyncio")
_RAISE = "raise ModuleNotFoundError({message!r}, name={name!r})\n"
_BOUND = 120.0


def _declared() -> set[str]:
    names: set[str] = set()
    for requirement in requires("lmstream-conformance") or []:
        if "extra ==" in requirement:
            continue  # an optional extra, not installed by default
        names.add(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_distribution_declares_the_spec_and_pytest_only() -> None:
    assert _declared() == {"lmstream-spec", "pytest", "typing-extensions"}


@pytest.fixture
def without_reference(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``lmstream.reference`` and ``pytest_asyncio`` cannot be imported."""
    shadow = tmp_path / "shadow"
    (shadow / "lmstream" / "reference").mkdir(parents=True)
    for name, path in (
        ("lmstream.reference", shadow / "lmstream" / "reference" / "__init__.py"),
        ("pytest_asyncio", shadow / "pytest_asyncio.py"),
    ):
        path.write_text(_RAISE.format(message=f"No module named {name!r} (hidden by the test)", name=name))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shadow), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=_BOUND, check=False
    )


def test_the_shadow_hides_both(without_reference: dict[str, str], tmp_path: Path) -> None:
    for name in _HIDDEN:
        done = _run(["-c", f"import {name}"], without_reference, tmp_path)
        assert done.returncode == 1 and "hidden by the test" in done.stderr, done.stderr


def test_lmstream_check_engine_runs_without_them(without_reference: dict[str, str], tmp_path: Path) -> None:
    argv = ["-m", "lmstream.conformance", "check", "engine", "lmstream.conformance.examples:EchoEngine"]
    done = _run([*argv, "--strict"], without_reference, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == f"{len(checks_for(TargetKind.ENGINE))} passed, 0 failed, 0 skipped"
    assert not any(name in done.stdout + done.stderr for name in _HIDDEN)


def test_the_plugin_runs_without_them(without_reference: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_echo.py").write_text(
        textwrap.dedent(
            """
            from lmstream.conformance import EngineConformance
            from lmstream.conformance.examples import EchoEngine

            class TestEcho(EngineConformance):
                engine = EchoEngine
            """
        )
    )
    # -p no:asyncio: pytest-asyncio is installed here and pytest would load its entry point, which the
    # shadow breaks; an install without it has no such entry point.
    done = _run(
        ["-m", "pytest", "-q", "-p", "no:asyncio", "-p", "no:cacheprovider"], without_reference, tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(checks_for(TargetKind.ENGINE))} passed" in done.stdout.splitlines()[-1]
