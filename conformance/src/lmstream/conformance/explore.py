"""Explore a stream manager's life as a hypothesis state machine, in one call: :func:`explore_manager`.

The state machine is :class:`lmstream.conformance.stateful.ManagerMachine` (subclass it to add rules and
invariants of your own; its docstring lists what it drives and what it checks). :func:`explore_manager`
runs it over one factory with the given settings and, on a violation, raises :class:`ExplorationFailure`
with the minimal example hypothesis found, as a paste-able script: hypothesis's own printed steps, under
a subclass that names the factory. Failing examples are saved in hypothesis's example database (the active
settings profile's; by default ``.hypothesis/examples`` in the working directory) and replayed first on the
next run.

This module does not import hypothesis; :func:`explore_manager` does, and without it raises a one-line
``RuntimeError`` saying how to install it.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

from ._isolation import require_sync
from .targets import manager_target

if TYPE_CHECKING:
    from .stateful import ManagerMachine

__all__ = ["AfterError", "EngineError", "ExplorationFailure", "Explored", "explore_manager"]

_HINT: Final = "pip install 'lmstream-conformance[explore]' (or hypothesis>=6.100)"


class EngineError(Exception):
    """The error a scripted engine raises (the ``fault="raise"`` of an example)."""


class AfterError(Exception):
    """The error an ``after`` callback raises when the example says it should (``after="raise"``)."""


class ExplorationFailure(AssertionError):
    """A manager broke a requirement in an explored example.

    ``str()`` is the whole report: the requirement, what was observed, then (from :func:`explore_manager`)
    a paste-able reproduction, and what happened at each step.

    :ivar requirement_id: the broken requirement, e.g. ``"SM-10"`` (``"target"`` when calling the factory
        itself raised).
    :ivar observed: what was observed, in one line.
    :ivar reproduction: the paste-able script (Python source; empty when raised by the machine itself, or
        when hypothesis printed no steps, e.g. under ``Verbosity.quiet``).
    :ivar trace: one line per step: what the consumer saw, the state, the waiters, the engine.
    """

    def __init__(
        self, requirement_id: str, observed: str, reproduction: str = "", trace: Sequence[str] = ()
    ) -> None:
        self.requirement_id = requirement_id
        self.observed = observed
        self.reproduction = reproduction
        self.trace = tuple(trace)
        lines = [f"{requirement_id}: {observed}"]
        if reproduction:
            lines += ["reproduce (paste into a script or a test):"]
            lines += [f"    {line}" if line else "" for line in reproduction.splitlines()]
        if self.trace:
            lines += ["what happened:", *(f"    {line}" for line in self.trace)]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[object, ...]:
        return (ExplorationFailure, (self.requirement_id, self.observed, self.reproduction, self.trace))


@dataclass(frozen=True)
class Explored:
    """What :func:`explore_manager` did when it found nothing: how many examples, how long."""

    factory: str
    examples: int
    seconds: float


def explore_manager(
    factory: object,
    *,
    max_examples: int = 200,
    seed: int | None = None,
    steps: int = 12,
    timeout: float = 1.0,
    name: str | None = None,
) -> Explored:
    """Run :class:`~lmstream.conformance.stateful.ManagerMachine` over ``factory``'s managers.

    The settings not given here (the example database, the phases, the verbosity) are those of
    hypothesis's active settings profile, except that the ``explain`` phase is left out: it traces every
    line of the shrunk example again, which made finding a broken manager about nine times slower, and the
    printed steps are the explanation.

    :param factory: a :class:`~lmstream.spec.ManagerFactory`, e.g. ``lmstream.reference.StreamManager``.
    :param max_examples: how many examples hypothesis runs (shrinking a failure runs more).
    :param seed: a seed, for a reproducible exploration (default: hypothesis's own randomness).
    :param steps: the most steps in one example.
    :param timeout: the backstop, in seconds, of every wait in an example (a hang is usually seen at once:
        a task still pending when nothing is left to run).
    :param name: the factory's name in reports (default: ``module:attribute``).
    :returns: how many examples ran and how long it took, when no example broke a requirement.
    :raises ExplorationFailure: with the minimal failing example, as a paste-able script.
    :raises RuntimeError: when hypothesis is not installed, or when called from a running event loop.
    :raises TargetError: when ``factory`` cannot be called as a manager factory.
    """
    if importlib.util.find_spec("hypothesis") is None:
        raise RuntimeError(f"explore_manager() needs hypothesis, which is not installed: {_HINT}")
    require_sync("explore_manager() and ManagerMachine")
    label = name or manager_target(factory).name

    import hypothesis
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    from .stateful import ManagerMachine

    active = settings.default
    phases = [phase for phase in (active.phases if active else Phase) if phase is not Phase.explain]
    count = [0]

    def __init__(self: ManagerMachine) -> None:
        ManagerMachine.__init__(self)
        count[0] += 1

    # Built by type(), not a class statement: hypothesis keys its database on the class's source, or on
    # its name when it has none, and the name is unique per factory.
    class_name = "Explore_" + re.sub(r"\W", "_", label)
    namespace = {"factory": factory, "name": label, "timeout": timeout, "__init__": __init__}
    machine = cast("type[ManagerMachine]", type(class_name, (ManagerMachine,), namespace))
    if seed is not None:
        machine = hypothesis.seed(seed)(machine)
    started = time.perf_counter()
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=max_examples,
                stateful_step_count=steps,
                deadline=None,
                # An example is a whole story (a loop, tasks, a dozen steps): slow and large by nature.
                suppress_health_check=[
                    HealthCheck.too_slow,
                    HealthCheck.data_too_large,
                    HealthCheck.filter_too_much,
                    HealthCheck.large_base_example,
                ],
                report_multiple_bugs=False,
                phases=phases,
            ),
        )
    except ExplorationFailure as failure:  # the minimal example's, its steps made a script
        steps_run = _printed_steps(failure)
        script = _script(label, class_name, timeout, steps_run) if steps_run else ""
        raise ExplorationFailure(failure.requirement_id, failure.observed, script, failure.trace) from None
    return Explored(label, count[0], time.perf_counter() - started)


def _printed_steps(failure: BaseException) -> list[str]:
    """The steps hypothesis printed for the minimal example (attached to the error as notes), from
    ``state = ...`` to ``state.teardown()``."""
    notes = [str(note) for note in getattr(failure, "__notes__", ())]
    start = next((i for i, note in enumerate(notes) if note.startswith("state = ")), None)
    if start is None:
        return []
    end = next((i for i in range(start, len(notes)) if notes[i] == "state.teardown()"), len(notes) - 1)
    return notes[start : end + 1]


def _script(label: str, class_name: str, timeout: float, steps: list[str]) -> str:
    """The steps under a subclass of ManagerMachine naming the factory ``label`` (``module:attribute``);
    one that cannot be imported by name is left for the reader to fill in."""
    from .stateful import ManagerMachine

    module, sep, attribute = label.partition(":")
    if sep and module and attribute and "<" not in attribute:
        imports = [f"from {module} import {attribute.split('.', 1)[0]}"]
        factory = attribute
    else:
        imports, factory = [], f"...  # fill in: {label}"
    lines = [*imports, "from lmstream.conformance.stateful import ManagerMachine", "", ""]
    lines += [f"class {class_name}(ManagerMachine):", f"    factory = {factory}"]
    if timeout != ManagerMachine.timeout:
        lines.append(f"    timeout = {timeout!r}")
    return "\n".join([*lines, "", "", *steps])
