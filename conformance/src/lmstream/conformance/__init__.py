"""lmstream.conformance: checks that prove an engine or a stream manager keeps the lmstream contract.

Three ways to run the same checks:

* the command line, ``lmstream check engine|manager|round module:attribute`` (:mod:`.cli`);
* the pytest plugin's base classes, :class:`EngineConformance`, :class:`ManagerConformance`,
  :class:`RoundConformance` (:mod:`.plugin`);
* from Python, :func:`run_checks` / :func:`run_check` (:mod:`.runner`), rendered with :mod:`.report`.

And one way to check live streams: :func:`validate` (an engine stream) and :func:`validate_manager`.

Exploring a manager's life as a hypothesis state machine: :class:`ManagerMachine` (subclass it, in
:mod:`.stateful`), or :func:`explore_manager` in one call (:mod:`.explore`).

Writing a check: :func:`check` registers ``async def run(target, ctx)``, which raises
:class:`CheckFailure` or :class:`CheckSkipped`; :class:`CheckContext` bounds every wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checks import CHECKS, check, checks_for, get_check
from .context import CheckContext, CheckTimeout
from .describe import describe_exception, describe_items, script, seconds
from .explore import ExplorationFailure, Explored, explore_manager
from .links import DOCS_BASE_ENV, local_spec_page, spec_url
from .messages import ChatMessage, Completion
from .model import (
    SUITE_VERSION,
    Check,
    CheckFailure,
    CheckResult,
    CheckSkipped,
    Outcome,
    Report,
    TargetKind,
    format_failure,
)
from .prompt import STANDARD_PROMPT, STANDARD_PROMPT_TEXT
from .report import render_json, render_junit, render_text
from .runner import (
    DEFAULT_IMPORT_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    default_grace,
    run_check,
    run_checks,
)
from .scripted import Block, Fail, Pause, StreamProbe, scripted_stream
from .selection import SelectionError, compile_selection
from .targets import (
    EngineTarget,
    ManagerTarget,
    RoundTarget,
    TargetError,
    engine_target,
    load_object,
    manager_target,
    resolve_target,
    round_target,
)
from .validate import LmstreamWarning, ValidatedStream, validate
from .validate_manager import ValidatedManager, ValidatedStoppableManager, validate_manager

if TYPE_CHECKING:  # imported on first use at run time: the command line needs neither pytest nor hypothesis
    from .plugin import EngineConformance, ManagerConformance, RoundConformance
    from .stateful import ManagerMachine

__all__ = [
    "CHECKS",
    "DEFAULT_IMPORT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DOCS_BASE_ENV",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "STANDARD_PROMPT",
    "STANDARD_PROMPT_TEXT",
    "SUITE_VERSION",
    "Block",
    "ChatMessage",
    "Check",
    "CheckContext",
    "CheckFailure",
    "CheckResult",
    "CheckSkipped",
    "CheckTimeout",
    "Completion",
    "EngineConformance",
    "EngineTarget",
    "ExplorationFailure",
    "Explored",
    "Fail",
    "LmstreamWarning",
    "ManagerConformance",
    "ManagerMachine",
    "ManagerTarget",
    "Outcome",
    "Pause",
    "Report",
    "RoundConformance",
    "RoundTarget",
    "SelectionError",
    "StreamProbe",
    "TargetError",
    "TargetKind",
    "ValidatedManager",
    "ValidatedStoppableManager",
    "ValidatedStream",
    "check",
    "checks_for",
    "compile_selection",
    "default_grace",
    "describe_exception",
    "describe_items",
    "engine_target",
    "explore_manager",
    "format_failure",
    "get_check",
    "load_object",
    "local_spec_page",
    "manager_target",
    "render_json",
    "render_junit",
    "render_text",
    "resolve_target",
    "round_target",
    "run_check",
    "run_checks",
    "script",
    "scripted_stream",
    "seconds",
    "spec_url",
    "validate",
    "validate_manager",
]

_LAZY = frozenset({"EngineConformance", "ManagerConformance", "RoundConformance"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import plugin

        return getattr(plugin, name)
    if name == "ManagerMachine":
        from .stateful import ManagerMachine

        return ManagerMachine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
