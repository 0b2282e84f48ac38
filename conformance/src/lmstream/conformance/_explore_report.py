"""What an explored example reports when the manager breaks a requirement
(:mod:`lmstream.conformance.explore`): :class:`ExplorationFailure` (the requirement, what was observed, the
reproduction and the trace, one line per action) and :func:`render_reproduction`, the paste-able
:func:`~lmstream.conformance.explore.replay_manager` call that replays an example.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._explore_world import Setup
from .scripted import Fail

__all__ = ["ExplorationFailure", "render_reproduction"]


class ExplorationFailure(AssertionError):
    """A manager broke a requirement in an explored (or replayed) example.

    ``str()`` is the whole report: the requirement, what was observed, a paste-able :func:`replay_manager`
    call and what happened at each action.

    :ivar requirement_id: the broken requirement, e.g. ``"SM-10"`` (``"target"`` when calling the factory
        itself raised).
    :ivar observed: what was observed, in one line.
    :ivar reproduction: the paste-able replay (Python source).
    :ivar trace: one line per action.
    """

    # Public as lmstream.conformance.explore.ExplorationFailure: named (in tracebacks), documented and
    # pickled under that path.
    __module__ = "lmstream.conformance.explore"

    def __init__(self, requirement_id: str, observed: str, reproduction: str, trace: Sequence[str]) -> None:
        self.requirement_id = requirement_id
        self.observed = observed
        self.reproduction = reproduction
        self.trace = tuple(trace)
        lines = [
            f"{requirement_id}: {observed}",
            "reproduce (paste into a script or a test):",
            *(f"    {line}" for line in reproduction.splitlines()),
            "what happened:",
            *(f"    {line}" for line in self.trace),
        ]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[object, ...]:
        return (ExplorationFailure, (self.requirement_id, self.observed, self.reproduction, self.trace))


def render_reproduction(name: str, setup: Setup, actions: list[str]) -> str:
    """A paste-able :func:`~lmstream.conformance.explore.replay_manager` call: the factory ``name`` (as
    :func:`~lmstream.conformance.targets.manager_target` names it, ``module:attribute``) over ``setup``, then
    ``actions``. A factory that cannot be imported by name appears as ``FACTORY``, to be filled in."""
    imports, expression = _reference(name)
    script = ", ".join(_render(item) for item in setup.script)
    return "\n".join(
        [
            *imports,
            "from lmstream.conformance import Block, Fail",
            "from lmstream.conformance.checks._manager_support import ScriptCompletion, ScriptMessage",
            "from lmstream.conformance.explore import EngineError, replay_manager",
            "",
            "replay_manager(",
            f"    {expression},",
            f"    script=[{script}],",
            f"    actions={actions!r},",
            f"    lock={setup.lock!r},",
            f"    after={setup.after!r},",
            f"    pause={setup.pause!r},",
            ")",
        ]
    )


def _reference(name: str) -> tuple[list[str], str]:
    module, sep, attribute = name.partition(":")
    if sep and module and attribute and "<" not in attribute:
        return [f"from {module} import {attribute.split('.', 1)[0]}"], attribute
    return [], f"FACTORY  # {name}"


def _render(item: object) -> str:
    if isinstance(item, Fail):
        return f"Fail({item.error!r})"
    return repr(item)
