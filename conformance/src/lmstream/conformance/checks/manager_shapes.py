"""The manager checks of what a manager is built from and with: completions accepted by shape (SM-14),
the role (SM-16), and a manager over an already finished message (SM-17, through the factory's
``from_message``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception, script
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import describe_item

from ._manager_support import (
    ROLE,
    TEXT,
    TOKENS,
    ScriptMessage,
    build,
    completion_for,
    consume,
    manager_reproduction,
    wait_result,
    waiter_bound,
)
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER

READ = [
    "tokens = []",
    "async for token in manager:",
    "    tokens.append(token)",
    "print(tokens)",
]
"""The reproduction body that reads the manager to its end and prints the tokens."""


# ---------------------------------------------------------------------------------------------- SM-14
class _PropertyMessage:
    """A message with read-only properties and slots: no dataclass, no base class."""

    __slots__ = ("_role", "_text")

    def __init__(self, role: object, text: str | None) -> None:
        self._role = role
        self._text = text

    @property
    def role(self) -> object:
        return self._role

    @property
    def text(self) -> str | None:
        return self._text

    def __repr__(self) -> str:
        return f"_PropertyMessage({self._role!r}, {self._text!r})"


class _PropertyCompletion:
    """A completion with read-only properties and slots."""

    __slots__ = ("_message",)

    def __init__(self, message: object) -> None:
        self._message = message

    @property
    def message(self) -> object:
        return self._message

    @property
    def prompt_tokens(self) -> int | None:
        return 11

    @property
    def completion_tokens(self) -> int | None:
        return None

    def __repr__(self) -> str:
        return f"_PropertyCompletion({self._message!r})"


class _TupleCompletion(NamedTuple):
    """A completion that is a named tuple."""

    message: ScriptMessage
    prompt_tokens: int | None
    completion_tokens: int | None


def _shapes() -> list[tuple[str, object]]:
    return [
        ("a plain frozen dataclass", completion_for()),
        (
            "a class with read-only properties and __slots__",
            _PropertyCompletion(_PropertyMessage(ROLE, TEXT)),
        ),
        ("a NamedTuple", _TupleCompletion(ScriptMessage(ROLE, TEXT), 5, 6)),
    ]


@check(
    "SM-14",
    _MANAGER,
    summary="completions that are a dataclass, a property class or a NamedTuple are each accepted as final",
)
async def completions_accepted_by_shape(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "any object with message (role, text), prompt_tokens and completion_tokens is accepted as the final "
        "item: the stream ends normally and completion() returns it"
    )
    for shape, completion in _shapes():
        script = (*TOKENS, completion)
        built = await build(target, ctx, script)
        seen = await consume(ctx, built.manager)
        repro = manager_reproduction(
            ctx,
            (*TOKENS, completion_for()),
            [*READ, "print(await asyncio.wait_for(manager.completion(), 1))"],
        )
        if seen.error is not None:
            raise CheckFailure(
                f"with a completion that is {shape} ({describe_item(completion)}) as the last item, the "
                f"consumer's loop raised {describe_exception(seen.error)} after {len(seen.tokens)} token(s)",
                expected=expected,
                reproduction=repro,
            )
        outcome = await wait_result(ctx, built.manager, timeout=waiter_bound(ctx))
        value = outcome.value
        if outcome.pending or outcome.error is not None:
            observed = f"completion() {outcome.describe()}"
        elif value is completion or getattr(value, "message", None) is getattr(completion, "message", None):
            continue
        else:
            observed = (
                f"completion() returned {describe_item(value)}, neither it nor a completion of its message"
            )
        raise CheckFailure(
            f"the engine's last item was a completion that is {shape} ({describe_item(completion)}); the "
            f"stream ended normally, but {observed}",
            expected=expected,
            reproduction=repro,
        )


# ---------------------------------------------------------------------------------------------- SM-16
class _Role:
    """A role that is neither a str nor an enum: a manager must keep it as it is."""

    def __repr__(self) -> str:
        return "<custom role>"


@check("SM-16", _MANAGER, summary="role is the very role given, before iteration and after the end")
async def role_is_the_construction_role(target: ManagerTarget, ctx: CheckContext) -> None:
    def failure(role: object, problem: str) -> CheckFailure:
        return CheckFailure(
            f"built with role {role!r}: {problem}",
            expected="role is the role the manager was built with (the same object, or an equal one of the "
            "same type), available before iteration",
            reproduction=manager_reproduction(ctx, TOKENS, ["print(repr(manager.role))"]),
        )

    managers: list[Any] = []
    roles: tuple[object, ...] = (ROLE, "user", _Role())
    for role in roles:
        managers.append((await build(target, ctx, TOKENS, role=role)).manager)
        problem = _role_problem(managers[-1], role, "before iteration")
        if problem is not None:
            raise failure(role, problem)
    last = managers[-1]
    try:
        seen = await consume(ctx, last)
    except CheckTimeout as exc:
        ctx.note(f"the stream did not end ({exc.observed}), so role after the end is not judged")
        return
    problem = _role_problem(last, roles[-1], f"after the stream ended ({seen.describe()})")
    if problem is not None:
        raise failure(roles[-1], problem)


def _role_problem(manager: Any, role: object, when: str) -> str | None:
    try:
        found = manager.role
    except Exception as exc:
        return f"reading role {when} raised {describe_exception(exc)}"
    if found is role or (type(found) is type(role) and found == role):
        return None
    return f"role is {describe_item(found)} {when}"


# ---------------------------------------------------------------------------------------------- SM-17
_FINISHED: tuple[str | None, ...] = (" Hello,  world!\n", None, "")


@check(
    "SM-17",
    _MANAGER,
    summary="factory.from_message(message) yields the text as one token (none if empty) and returns it",
)
async def finished_message_streams_as_one_token(target: ManagerTarget, ctx: CheckContext) -> None:
    """The ManagerFactory protocol has no constructor from a finished message, so this check uses the
    factory's ``from_message(message)`` attribute (the reference's ``StreamManager.from_message``) and skips
    when there is none. kani's equivalent is a separate class, ``kani.streaming.DummyStream``."""
    from_message = getattr(target.factory, "from_message", None)
    if not callable(from_message):
        raise CheckSkipped(
            f"{target.name} has no from_message(message) constructor, and the ManagerFactory protocol has "
            "no other way to build a manager from an already finished message (kani's is a separate class, "
            "kani.streaming.DummyStream); SM-17 is checked through TARGET.from_message"
        )
    for text in _FINISHED:
        message = ScriptMessage(ROLE, text)
        wanted = [text] if text else []
        repro = _sm17_reproduction(ctx, text)
        try:
            manager: Any = from_message(message)
        except Exception as exc:
            raise CheckFailure(
                f"{target.name}.from_message({message!r}) raised {describe_exception(exc)}",
                expected="a manager over the finished message",
                reproduction=repro,
            ) from exc
        seen = await consume(ctx, manager)
        expected = (
            f"a manager built from a finished message yields its text as one token ({wanted!r}) and "
            "completion() returns a completion whose message is that very message object"
        )
        if seen.error is not None or seen.tokens != wanted:
            raise CheckFailure(
                f"from_message({message!r}): {seen.describe()}", expected=expected, reproduction=repro
            )
        outcome = await wait_result(ctx, manager, timeout=waiter_bound(ctx))
        if outcome.pending or outcome.error is not None:
            observed = f"completion() {outcome.describe()}"
        elif getattr(outcome.value, "message", None) is message:
            continue
        else:
            found = getattr(outcome.value, "message", "<no message attribute>")
            observed = (
                f"completion() returned {describe_item(outcome.value)}, whose message is "
                f"{describe_item(found)}, not the message given"
            )
        raise CheckFailure(
            f"from_message({message!r}) yielded {seen.tokens!r}, then {observed}",
            expected=expected,
            reproduction=repro,
        )


def _sm17_reproduction(ctx: CheckContext, text: str | None) -> str:
    imports, expression = ctx.target_reference()
    return script(
        [*imports, "from lmstream.conformance.checks._manager_support import ScriptMessage"],
        [
            f"message = ScriptMessage({ROLE!r}, {text!r})",
            f"manager = {expression}.from_message(message)",
            "print([token async for token in manager])",
            "completion = await asyncio.wait_for(manager.completion(), 1)",
            "print(completion.message is message)",
        ],
    )
