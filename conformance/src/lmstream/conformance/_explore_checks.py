"""The invariants of an explored example (:class:`~lmstream.conformance.stateful.ManagerMachine`), judged on
its :class:`~._explore_world.World`: a broken one is raised as a :class:`Violation` naming the requirement.

* :func:`check_now`: what holds after every step;
* :func:`check_finished`: what holds once the engine is released and every task has finished;
* :func:`hang_id`: the requirement that a hang, or an engine stream left open, breaks, from how the stream
  ended.

The module docstring of :mod:`lmstream.conformance.stateful` lists the invariants. These functions only read
the world; they never run the event loop.
"""

from __future__ import annotations

from lmstream.spec import StreamIncompleteError, StreamProtocolError, describe_item

from ._explore_actors import Waiter
from ._explore_world import World
from .checks._manager_support import ROLE, ScriptCompletion
from .describe import describe_exception, describe_items

__all__ = ["Violation", "check_finished", "check_now", "hang_id"]


class Violation(Exception):
    """A requirement the manager broke, and what was observed, in one line."""

    def __init__(self, requirement_id: str, observed: str) -> None:
        super().__init__(observed)
        self.requirement_id = requirement_id
        self.observed = observed


def _own_violation(error: object) -> Violation | None:
    """A validate_manager() error (an SM- requirement) is a violation; a manager's ES- error is not."""
    if isinstance(error, StreamProtocolError) and error.requirement_id.startswith("SM-"):
        return Violation(error.requirement_id, error.detail)
    return None


# ---------------------------------------------------------------------------------------------- always
def check_now(world: World) -> None:
    """The invariants that hold after every action."""
    if world.stoppable:
        try:
            world.proxy.state  # noqa: B018 - sampling state is the check (SM-27)
        except StreamProtocolError as exc:
            raise Violation(exc.requirement_id, exc.detail) from None
    consumer = world.consumer
    if consumer is not None:
        for error in (consumer.error, consumer.refused):
            found = _own_violation(error)
            if found is not None:
                raise found
        wanted = world.setup.tokens
        if consumer.tokens != wanted[: len(consumer.tokens)]:
            raise Violation(
                "SM-1",
                f"the consumer received {describe_items(consumer.tokens)}, which is not the start of the "
                f"engine's tokens {describe_items(wanted)}",
            )
        if consumer.after_stop:
            raise Violation(
                "SM-24",
                f"a step of the consumer's loop begun after aclose() had returned did not end the loop: "
                f"{consumer.after_stop[0]}",
            )
        _explain(world, consumer.error, "the consumer's loop")
    for waiter in world.waiters:
        found = _own_violation(_error_of(waiter))
        if found is not None:
            raise found
        _explain(world, _error_of(waiter), f"{waiter.method}()")
        if waiter.unverified and waiter.done:
            _check_unread_incomplete(world, waiter.value)
    if world.lock is not None and (
        world.lock.acquisitions > 1 or world.lock.releases > world.lock.acquisitions
    ):
        raise Violation(
            "SM-12",
            f"the lock was acquired {world.lock.acquisitions} time(s) and released {world.lock.releases} "
            "time(s)",
        )
    if len(world.after_calls) > 1:
        raise Violation("SM-13", f"after was called {len(world.after_calls)} times")
    _check_agreement(world, final=False)


def _explain(world: World, error: BaseException | None, who: str) -> None:
    """An error must come from the script: the engine's fault, after's error, a stop or an early end.
    Anything else is the manager failing a stream it should have handled."""
    fault = world.setup.fault
    if error is None or error is fault or error is world.after_error:
        return
    if isinstance(error, StreamIncompleteError):
        return
    if fault is not None and not isinstance(fault, BaseException):  # a bytes item
        if isinstance(error, StreamProtocolError):
            return
        raise Violation(
            "SM-9", f"the engine yielded a bytes item and {who} raised {describe_exception(error)}"
        )
    if isinstance(fault, BaseException) and world.probe.raised is fault:
        raise Violation("SM-8", f"the engine raised {fault!r}, but {who} raised {describe_exception(error)}")
    consumer = world.consumer
    if consumer is not None and who == "the consumer's loop" and consumer.left == "aclose":
        raise Violation("SM-10", f"closing the manager's iterator raised {describe_exception(error)}")
    if any(isinstance(item, ScriptCompletion) for item in world.probe.yielded):
        raise Violation(
            "SM-14",
            f"{who} raised {describe_exception(error)} once the engine yielded its completion, a plain "
            "dataclass shaped like one: a manager accepts completions by shape",
        )
    raise Violation("SM-1", f"{who} raised {describe_exception(error)}, which nothing in the script explains")


def _check_unread_incomplete(world: World, error: object) -> None:
    """A stream a waiter drove and that was stopped: its text is some first tokens of the engine's."""
    assert isinstance(error, StreamIncompleteError)
    tokens = world.setup.tokens
    if not any(error.text == "".join(tokens[:k]) for k in range(len(tokens) + 1)):
        raise Violation(
            "SM-28",
            f"StreamIncompleteError.text is {describe_item(error.text)}, which is no run of the engine's "
            f"first tokens {describe_items(tokens)}",
        )
    if world.stoppable and error.reason != world.proxy.state:
        raise Violation(
            "SM-28", f"StreamIncompleteError.reason is {error.reason} but the state is {world.proxy.state}"
        )


def _error_of(waiter: Waiter) -> BaseException | None:
    outcome = waiter.outcome()
    error = outcome[1] if outcome is not None and outcome[0] == "error" else None
    return error if isinstance(error, BaseException) else None


def _check_agreement(world: World, *, final: bool) -> None:
    """Every waiter with an outcome got the same result, or the same error (SM-7, SM-8, SM-10)."""
    done = [(w, w.outcome()) for w in world.waiters]
    outcomes = [(w, o) for w, o in done if o is not None]
    for waiter, (kind, _) in outcomes:
        if kind == "cancelled":
            raise Violation(
                "SM-26", f"waiter {waiter.method}() ended cancelled, though nobody cancelled its task"
            )
    values = [(w, v) for w, (k, v) in outcomes if k == "value"]
    errors = [(w, v) for w, (k, v) in outcomes if k == "error"]
    if values and errors:
        raise Violation(
            "SM-7",
            f"{values[0][0].method}() returned {describe_item(values[0][1])} but "
            f"{errors[0][0].method}() raised {describe_item(errors[0][1])}",
        )
    completions = [v for w, v in values if w.method == "completion"]
    messages = [v for w, v in values if w.method != "completion"]
    if any(c is not completions[0] for c in completions) or any(m is not messages[0] for m in messages):
        raise Violation("SM-7", "the waiters received different objects")
    if completions and messages and getattr(completions[0], "message", None) is not messages[0]:
        raise Violation("SM-5", "message() / await did not return completion().message")
    if errors:
        _check_errors(world, [e for _, e in errors])
    if final:
        _check_final(world, completions[0] if completions else None, errors[0][1] if errors else None)


def _check_errors(world: World, errors: list[object]) -> None:
    first = errors[0]
    for other in errors[1:]:
        same = other is first or (
            isinstance(first, StreamIncompleteError)
            and isinstance(other, StreamIncompleteError)
            and (first.text, first.reason) == (other.text, other.reason)
        )
        if not same:
            raise Violation(
                "SM-8",
                f"the waiters got different errors: {describe_item(first)} and {describe_item(other)}",
            )
    consumer = world.consumer
    loop_error = consumer.error if consumer is not None else None
    if (
        loop_error is not None
        and loop_error is not first
        and not (isinstance(first, StreamIncompleteError) and isinstance(loop_error, StreamIncompleteError))
    ):
        raise Violation(
            "SM-8",
            f"the consumer's loop raised {describe_item(loop_error)} but the waiters got "
            f"{describe_item(first)}",
        )
    for error, kind in ((world.setup.fault, "engine"), (world.after_error, "after")):
        if isinstance(error, BaseException) and isinstance(first, type(error)) and first is not error:
            rid = "SM-8" if kind == "engine" else "SM-13"
            raise Violation(rid, f"the waiters got a copy of the {kind}'s error, not the very object")


# ---------------------------------------------------------------------------------------------- at the end
def check_finished(world: World) -> None:
    """The invariants that hold once the engine is released and every task has finished: those of
    :func:`check_now`, every outcome agreeing with the script (SM-1, SM-4, SM-8, SM-9, SM-13), the
    consumer's task (SM-11, SM-26), the lock free (SM-12), the engine stream closed (SM-10, SM-11, SM-24,
    SM-15)."""
    check_now(world)
    _check_agreement(world, final=True)
    _check_consumer_task(world)
    lock = world.lock
    if lock is not None and (lock.locked() or lock.releases != lock.acquisitions):
        raise Violation(
            "SM-12",
            f"at the end the lock is {'held' if lock.locked() else 'free'}, acquired "
            f"{lock.acquisitions} and released {lock.releases} time(s)",
        )
    if not world.engine_closed():
        rid = hang_id(world) if _left_early(world) else "SM-15"
        raise Violation(rid, f"at the end the engine stream was not closed ({world.engine_state()})")


def _check_final(world: World, completion: object, error: object) -> None:
    """What must hold once everything has resolved (SM-1, SM-4, SM-8, SM-9, SM-13)."""
    consumer = world.consumer
    setup = world.setup
    normal_end = consumer is not None and consumer.ended and not world.stops
    if normal_end and consumer is not None:
        if setup.fault is not None:
            rid = "SM-8" if isinstance(setup.fault, BaseException) else "SM-9"
            raise Violation(
                rid, f"the engine's fault {describe_item(setup.fault)} did not reach the consumer"
            )
        if consumer.tokens != setup.tokens:
            raise Violation(
                "SM-1",
                f"the loop ended normally after {describe_items(consumer.tokens)}; the engine yielded "
                f"{describe_items(setup.tokens)}",
            )
        if world.after_error is not None:
            raise Violation("SM-13", "after raised, but the consumer's loop ended normally")
        _check_completion(world, completion, error)
    if world.after_calls:
        called = world.after_calls[0]
        if world.after_error is None and completion is not called:
            raise Violation(
                "SM-13",
                f"after was called with {describe_item(called)}, but the result is "
                f"{describe_item(completion if error is None else error)}",
            )
        if world.after_error is not None and error is not world.after_error:
            raise Violation("SM-13", f"after raised, but the result is {describe_item(error or completion)}")
    elif setup.after is not None and error is None and completion is not None:
        raise Violation("SM-13", "the stream completed, but after was never called")


def _check_completion(world: World, completion: object, error: object) -> None:
    if error is not None or completion is None:
        raise Violation("SM-8", f"the loop ended normally, but the result raised {describe_item(error)}")
    own = world.setup.completion
    if own is not None:
        if completion is not own:
            raise Violation("SM-4", f"the engine's completion was replaced by {describe_item(completion)}")
        return
    message = getattr(completion, "message", None)
    text = getattr(message, "text", None)
    wanted = "".join(world.setup.tokens)
    role = getattr(message, "role", None)
    if text != wanted or (role != ROLE and getattr(role, "value", None) != ROLE):  # kani's ChatRole is fine
        raise Violation(
            "SM-4",
            f"the built message has role {role!r} and text {text!r}; expected role {ROLE!r} and the "
            f"exact text of the tokens, {wanted!r}",
        )


def _check_consumer_task(world: World) -> None:
    task, consumer = world.consumer_task, world.consumer
    if task is None or consumer is None:
        return
    if task.cancelled() and not world.cancelled_consumer:
        raise Violation("SM-26", "the consumer's task ended cancelled, though nobody cancelled it")
    if world.cancelled_consumer and not task.cancelled():
        raise Violation("SM-11", f"the consumer's task was cancelled, but it {world.how_consumer_ended()}")


# ---------------------------------------------------------------------------------------------- hangs
def hang_id(world: World) -> str:
    """The requirement a hang (or an unclosed engine) breaks, from how the stream ended."""
    consumer = world.consumer
    if world.stopped():
        return "SM-24"
    if consumer is None or not consumer.claimed or not consumer.over:
        return "SM-7"  # a waiter drove the stream (SM-6); the others must get the same result
    if consumer.cancelled:
        return "SM-11"
    if consumer.left is not None:
        return "SM-10"
    error = consumer.error
    if error is not None and error is world.after_error:
        return "SM-13"
    if isinstance(error, StreamProtocolError):
        return "SM-9"
    return "SM-8" if error is not None else "SM-7"


def _left_early(world: World) -> bool:
    consumer = world.consumer
    return world.stopped() or (
        consumer is not None and consumer.claimed and (consumer.cancelled or consumer.left is not None)
    )
