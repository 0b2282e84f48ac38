"""Explore a stream manager's life as a hypothesis state machine: the orders of events no one wrote down.

:func:`explore_manager` draws an engine script (tokens, whitespace included; optionally a completion, an
engine error or a bytes item at some position, a :class:`~lmstream.conformance.scripted.Block`), builds a
manager over it with the factory (optionally with a lock and an ``after`` that records or raises), and lets
hypothesis interleave *actions*: the consumer steps one token, breaks out of its loop or closes its iterator;
a waiter starts in another task (``completion()``, ``message()``, ``await``); the consumer's task is
cancelled; ``aclose()`` is called from another task (only when the manager offers it); the blocked engine
is released; the event loop turns. Every example runs in a fresh event loop of its own, and every wait is
bounded, in event-loop turns first (a task still pending when nothing is left to run will never finish) and
by the clock (``timeout``) as a backstop.

**What is checked** (each violation names its requirement):

* after every action: everything :func:`~lmstream.conformance.validate_manager` checks live (SM-1, SM-5,
  SM-7, SM-16, SM-22, SM-27 ``state`` moves only along STATE_TRANSITIONS, SM-28 the incomplete text is the
  consumer's tokens); the consumer's tokens are a prefix of the engine's, unchanged (SM-1); the waiters that
  have an outcome agree: the same object, or the same error (SM-7, SM-8); the lock is taken at most once and
  never released more often than taken (SM-12); ``after`` runs at most once (SM-13); a consumer step begun
  after ``aclose()`` returned yields nothing and raises nothing (SM-24);
* at the end, before the engine is released: ``aclose()`` has returned (SM-22, SM-24), and if the stream
  has ended (the consumer's loop ended in any way, or a stop returned) every waiter has its outcome
  (SM-8, SM-10, SM-11, SM-24);
* then, the engine released and the story finished (the consumer reads on, one more ``completion()``):
  everything resolves; all outcomes agree, the consumer's error included; a loop that ended normally saw
  every token and its result is the engine's completion or the exact text (SM-1, SM-4, SM-8, SM-9, SM-13);
  ``after`` ran exactly when the stream completed (SM-13); the lock is free (SM-12); the engine stream is
  closed (SM-10, SM-11 or SM-24 after an early end, SM-15 otherwise); no task is left and nothing warned
  (SM-15); no task ended cancelled that nobody cancelled, and a cancelled consumer ended cancelled (SM-26,
  SM-11); an error nothing in the script explains is the manager's (SM-14 once a completion was read,
  SM-9 for a bytes item, SM-8 for the engine's error, else SM-1).

On a violation hypothesis shrinks the example, and :class:`ExplorationFailure` is raised with the minimal
example as paste-able text: a :func:`replay_manager` call (the engine script and the actions) and what
happened at each action. :func:`replay_manager` replays a script without hypothesis.

hypothesis is imported only by :func:`explore_manager`; without it that function raises a one-line
``RuntimeError`` saying how to install it.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

# The parts, one private module each: _explore_world (an example's setup and state, told in words),
# _explore_actors (the consumer and the waiters), _explore_loop (bounded waits), _explore_checks (the
# invariants), _explore_run (one example from start to end), _explore_report (the failure and its
# paste-able reproduction). This module is the public API and the hypothesis state machine.
from ._explore_report import ExplorationFailure
from ._explore_run import Run
from ._explore_world import After, AfterError, Setup
from ._isolation import require_sync
from .checks._manager_support import ROLE, ScriptCompletion, ScriptMessage
from .scripted import Block, Fail
from .targets import manager_target

__all__ = [
    "ACTIONS",
    "AfterError",
    "EngineError",
    "ExplorationFailure",
    "Explored",
    "explore_manager",
    "replay_manager",
]

ACTIONS: Final = (
    "step",
    "break",
    "aclose",
    "cancel",
    "completion",
    "message",
    "await",
    "stop",
    "release",
    "settle",
)
"""What an action may be: ``name`` or ``name+N`` (then N event-loop turns).

``step``: the consumer asks for one token; ``break``: it leaves its loop (dropping the iterator); ``aclose``:
it closes its iterator; ``cancel``: its task is cancelled; ``completion``, ``message``, ``await``: a waiter
starts in a task of its own; ``stop``: ``aclose()`` of the manager in a task of its own; ``release``: the
engine's Block is released; ``settle``: the loop runs until nothing is left to run."""

_HINT: Final = "pip install 'lmstream-conformance[explore]' (or hypothesis>=6.100)"


class EngineError(Exception):
    """The error a scripted engine raises (a ``Fail`` step)."""


@dataclass(frozen=True)
class Explored:
    """What :func:`explore_manager` did when it found nothing: how many examples, how long."""

    factory: str
    examples: int
    seconds: float


# ---------------------------------------------------------------------------------------------- replay
def replay_manager(
    factory: object,
    script: Sequence[object],
    actions: Sequence[str],
    *,
    lock: bool = False,
    after: After = None,
    pause: float | None = 0.0,
    timeout: float = 1.0,
    name: str | None = None,
) -> list[str]:
    """Run one example by hand: ``factory`` over an engine running ``script``, then ``actions`` in order
    (see ``ACTIONS``), then the end of the story, with every check of :func:`explore_manager`.

    Call it from synchronous code (it runs its own event loop).

    :returns: what happened, one line per action.
    :raises ExplorationFailure: at the first violation.
    :raises ValueError: for an unknown action.
    """
    require_sync("explore_manager() and replay_manager()")
    label = name or manager_target(factory).name
    run = Run(factory, Setup(tuple(script), lock, after, pause), name=label, timeout=timeout)
    try:
        for action in actions:
            _check_action(action)
            run.apply(action)
    except BaseException:
        run.close()
        raise
    run.finish()
    return run.trace


# ---------------------------------------------------------------------------------------------- explore
def explore_manager(
    factory: object,
    *,
    max_examples: int = 200,
    seed: int | None = None,
    steps: int = 12,
    timeout: float = 1.0,
    name: str | None = None,
) -> Explored:
    """Explore ``factory``'s managers with a hypothesis state machine (see the module docstring).

    :param factory: a :class:`~lmstream.spec.ManagerFactory`, e.g. ``lmstream.reference.StreamManager``.
    :param max_examples: how many examples hypothesis runs (shrinking a failure runs more).
    :param seed: a seed, for a reproducible exploration (default: hypothesis's own randomness).
    :param steps: the most actions in one example.
    :param timeout: the backstop, in seconds, of every wait in an example (hangs are usually detected at
        once: a task still pending when nothing is left to run).
    :returns: how many examples ran and how long it took, when no example broke a requirement.
    :raises ExplorationFailure: with the minimal failing example, as paste-able text.
    :raises RuntimeError: when hypothesis is not installed, or when called from a running event loop.
    """
    if importlib.util.find_spec("hypothesis") is None:
        raise RuntimeError(f"explore_manager() needs hypothesis, which is not installed: {_HINT}")
    require_sync("explore_manager() and replay_manager()")
    label = name or manager_target(factory).name
    started = time.perf_counter()
    counter = [0]

    def make_run(setup: Setup) -> Run:
        counter[0] += 1
        return Run(factory, setup, name=label, timeout=timeout)

    try:
        _run_machine(make_run, max_examples=max_examples, seed=seed, steps=steps)
    except ExplorationFailure as failure:  # the minimal example's, without hypothesis's notes
        raise ExplorationFailure(
            failure.requirement_id, failure.observed, failure.reproduction, failure.trace
        ) from None
    return Explored(label, counter[0], time.perf_counter() - started)


def _check_action(action: str) -> None:
    name, _, turns = action.partition("+")
    if name not in ACTIONS or (turns and not turns.isdigit()):
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}, or name+N")


def _run_machine(
    make_run: Callable[[Setup], Run], *, max_examples: int, seed: int | None, steps: int
) -> None:
    """Build the state machine over ``make_run`` and let hypothesis run it (hypothesis imported here)."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        initialize,
        precondition,
        rule,
        run_state_machine_as_test,
    )

    turns = st.integers(min_value=0, max_value=2)
    token = st.text(alphabet=" \n\tab", max_size=3)

    @st.composite
    def setups(draw: st.DrawFn) -> Setup:
        tokens = draw(st.lists(token, max_size=5))
        items: list[object] = list(tokens)
        ending = draw(st.sampled_from(["none", "completion", "completion without text"]))
        if ending == "completion":
            items.append(ScriptCompletion(ScriptMessage(ROLE, "".join(tokens)), 7, len(tokens)))
        elif ending == "completion without text":
            items.append(ScriptCompletion(ScriptMessage(ROLE, None)))
        fault = draw(st.sampled_from([None, "raise", "bytes"]))
        if fault is not None:
            at = draw(st.integers(min_value=0, max_value=len(tokens)))
            items.insert(
                at, Fail(EngineError(f"engine failed after {at} token(s)")) if fault == "raise" else b"\xff"
            )
        if draw(st.booleans()):
            items.insert(draw(st.integers(min_value=0, max_value=len(items))), Block())
        after: After = draw(st.sampled_from([None, "record", "raise"]))
        return Setup(tuple(items), draw(st.booleans()), after, draw(st.sampled_from([0.0, None])))

    def consumer_open(machine: ManagerLife) -> bool:
        return machine.run is not None and machine.run.consumer_open

    def can_cancel(machine: ManagerLife) -> bool:
        return machine.run is not None and machine.run.can_cancel

    def can_wait(machine: ManagerLife) -> bool:
        return machine.run is not None and len(machine.run.waiters) < 3

    def can_stop(machine: ManagerLife) -> bool:
        return machine.run is not None and machine.run.stoppable and len(machine.run.stops) < 2

    def can_release(machine: ManagerLife) -> bool:
        return machine.run is not None and machine.run.can_release

    class ManagerLife(RuleBasedStateMachine):
        """One manager's life; the rules are the actions of ``ACTIONS``."""

        def __init__(self) -> None:
            super().__init__()
            self.run: Run | None = None

        def act(self, name: str, count: int) -> None:
            assert self.run is not None
            self.run.apply(f"{name}+{count}" if count else name)

        @initialize(setup=setups())
        def begin(self, setup: Setup) -> None:
            self.run = make_run(setup)

        @precondition(consumer_open)
        @rule(count=turns)
        def step(self, count: int) -> None:
            self.act("step", count)

        @precondition(consumer_open)
        @rule(how=st.sampled_from(["break", "aclose"]), count=turns)
        def leave(self, how: str, count: int) -> None:
            self.act(how, count)

        @precondition(can_cancel)
        @rule(count=turns)
        def cancel(self, count: int) -> None:
            self.act("cancel", count)

        @precondition(can_wait)
        @rule(method=st.sampled_from(["completion", "message", "await"]), count=turns)
        def wait(self, method: str, count: int) -> None:
            self.act(method, count)

        @precondition(can_stop)
        @rule(count=turns)
        def stop(self, count: int) -> None:
            self.act("stop", count)

        @precondition(can_release)
        @rule(count=turns)
        def release(self, count: int) -> None:
            self.act("release", count)

        @rule()
        def settle(self) -> None:
            self.act("settle", 0)

        def teardown(self) -> None:
            if self.run is not None:
                self.run.finish()

    if seed is not None:
        hypothesis.seed(seed)(ManagerLife)
    run_state_machine_as_test(
        ManagerLife,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
                HealthCheck.large_base_example,
            ],
            report_multiple_bugs=False,
            verbosity=Verbosity.quiet,
        ),
    )
