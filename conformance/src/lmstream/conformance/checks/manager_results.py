"""The manager checks of the result: the completion (SM-4), its three spellings (SM-5) and results asked for
before iteration (SM-6).

Results are judged by identity where the spec says "the same object", and by value (role, exact text,
counts) where it says how a built completion must look. The check of the engine's own completion skips,
naming SM-14, when the manager rejects one shaped as a plain dataclass.
"""

from __future__ import annotations

from typing import Any

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import describe_item

from ._manager_support import (
    RESULT_METHODS,
    ROLE,
    TOKENS,
    Outcome,
    ResultMethod,
    build,
    call_name,
    completion_for,
    consume,
    manager_reproduction,
    rejected_completion,
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
]
"""The reproduction lines that read the manager to its end."""


def _result_line(method: ResultMethod, name: str = "result") -> str:
    call = "manager" if method == "await" else f"manager.{method}()"
    return f"{name} = await asyncio.wait_for({call}, 1)"


# ---------------------------------------------------------------------------------------------- SM-4
@check(
    "SM-4",
    _MANAGER,
    summary="completion() returns the engine's own completion object (with tokens, and alone with text None)",
)
async def engine_completion_is_returned(target: ManagerTarget, ctx: CheckContext) -> None:
    for script in ((*TOKENS, completion_for()), (completion_for(None),)):
        completion = script[-1]
        built = await build(target, ctx, script)
        seen = await consume(ctx, built.manager)
        skip = rejected_completion(built, seen.error, "SM-4")
        if skip is not None:
            raise skip
        if seen.error is not None:
            observed = f"the consumer's loop raised {describe_exception(seen.error)}"
        else:
            outcome = await wait_result(ctx, built.manager, timeout=waiter_bound(ctx))
            if outcome.value is completion:
                continue
            different = ", a different object" if outcome.error is None and not outcome.pending else ""
            observed = f"completion() {outcome.describe()}{different}"
        tokens = f"{len(TOKENS)} tokens and " if len(script) > 1 else ""
        raise CheckFailure(
            f"the engine yielded {tokens}its own completion {describe_item(completion)}; after a full read, "
            f"{observed}",
            expected="completion() returns the engine's own completion object when the engine yielded one",
            reproduction=manager_reproduction(
                ctx,
                script,
                [
                    *READ,
                    "completion = await asyncio.wait_for(manager.completion(), 1)",
                    "print(completion is items[-1])  # expect True",
                ],
            ),
        )


@check(
    "SM-4",
    _MANAGER,
    summary="with no engine completion, completion() is built: the manager's role, the exact text, no counts",
)
async def built_completion_is_exact(target: ManagerTarget, ctx: CheckContext) -> None:
    for script in (TOKENS, ()):
        text = "".join(script)
        built = await build(target, ctx, script)
        seen = await consume(ctx, built.manager)
        repro = manager_reproduction(
            ctx,
            script,
            [
                *READ,
                "completion = await asyncio.wait_for(manager.completion(), 1)",
                "print(repr(completion.message.role), repr(completion.message.text))",
                "print(completion.prompt_tokens, completion.completion_tokens)",
            ],
        )
        expected = (
            f"a new completion whose message has role {ROLE!r} and text exactly {text!r} (the tokens "
            "concatenated, nothing stripped), prompt_tokens and completion_tokens None"
        )
        where = (
            f"the engine yielded {len(script)} token(s) and no completion" if script else "an empty stream"
        )
        if seen.error is not None:
            raise CheckFailure(
                f"{where}: the consumer's loop raised {describe_exception(seen.error)}",
                expected=expected,
                reproduction=repro,
            )
        outcome = await wait_result(ctx, built.manager, timeout=waiter_bound(ctx))
        if outcome.pending or outcome.error is not None:
            raise CheckFailure(
                f"{where}: completion() {outcome.describe()}", expected=expected, reproduction=repro
            )
        problems = _built_problems(outcome.value, text)
        if problems:
            raise CheckFailure(
                f"{where}; completion() returned {describe_item(outcome.value)}: {'; '.join(problems)}",
                expected=expected,
                reproduction=repro,
            )


def _built_problems(completion: Any, text: str) -> list[str]:
    problems: list[str] = []
    message = getattr(completion, "message", None)
    found_text = getattr(message, "text", "<missing>")
    if found_text != text or type(found_text) is not str:
        stripped = (
            " (the text stripped)" if isinstance(found_text, str) and found_text == text.strip() else ""
        )
        problems.append(f"its message's text is {found_text!r}, not {text!r}{stripped}")
    role = getattr(message, "role", "<missing>")
    if not (role is ROLE or (type(role) is type(ROLE) and role == ROLE)):
        problems.append(
            f"its message's role is {describe_item(role)}, not the role the manager was built with, {ROLE!r}"
        )
    for name in ("prompt_tokens", "completion_tokens"):
        value = getattr(completion, name, "<missing>")
        if value is not None:
            problems.append(f"its {name} is {describe_item(value)}, not None")
    return problems


# ---------------------------------------------------------------------------------------------- SM-5
@check("SM-5", _MANAGER, summary="after a full read, message() is completion().message and await gives it")
async def message_and_await_are_completion_message(target: ManagerTarget, ctx: CheckContext) -> None:
    built = await build(target, ctx, TOKENS)
    manager = built.manager
    seen = await consume(ctx, manager)
    if seen.error is not None:
        raise CheckSkipped(f"the stream did not end normally ({seen.describe()}); SM-1's check reports it")
    results: dict[ResultMethod, Outcome] = {
        method: await wait_result(ctx, manager, method, timeout=waiter_bound(ctx))
        for method in RESULT_METHODS
    }
    completion, message, awaited = (results[m] for m in RESULT_METHODS)
    problems = [
        f"{call_name(m)} {o.describe()}" for m, o in results.items() if o.pending or o.error is not None
    ]
    if not problems:
        inner = getattr(completion.value, "message", None)
        if message.value is not inner:
            problems.append(
                f"message() returned {describe_item(message.value)}, not completion().message "
                f"({describe_item(inner)}), the very object"
            )
        if awaited.value is not message.value:
            problems.append(
                f"await manager returned {describe_item(awaited.value)}, not what message() returned "
                f"({describe_item(message.value)})"
            )
    if problems:
        raise CheckFailure(
            f"after a full read: {'; '.join(problems)}",
            expected="message() returns completion().message (the same object), and awaiting the manager "
            "returns the same as message()",
            reproduction=manager_reproduction(
                ctx,
                TOKENS,
                [
                    *READ,
                    _result_line("completion", "completion"),
                    _result_line("message", "message"),
                    _result_line("await", "awaited"),
                    "print(message is completion.message, awaited is message)",
                ],
            ),
        )


# ---------------------------------------------------------------------------------------------- SM-6
@check(
    "SM-6",
    _MANAGER,
    summary="completion(), message() or await before any iteration reads the stream and returns the result",
)
async def results_before_iteration_consume_the_stream(target: ManagerTarget, ctx: CheckContext) -> None:
    for method in RESULT_METHODS:
        built = await build(target, ctx, TOKENS)
        started = ctx.elapsed()
        outcome = await wait_result(ctx, built.manager, method)
        problem = ""
        if outcome.pending:
            problem = (
                f"had not returned after {seconds(ctx.elapsed() - started)} (the rest of the check's "
                f"budget); the engine had been asked for {built.probe.requests} item(s)"
            )
        elif outcome.error is not None:
            problem = outcome.describe()
        elif not built.probe.ended:
            problem = (
                f"returned {describe_item(outcome.value)} but the engine stream was not read to its end "
                f"({built.probe.requests} request(s) for {len(TOKENS)} tokens and the end)"
            )
        else:
            wanted = ("message",) if method == "completion" else ("role", "text")
            missing = [name for name in wanted if not hasattr(outcome.value, name)]
            if missing:
                problem = (
                    f"returned {describe_item(outcome.value)}, which has no {', '.join(missing)}: not a "
                    f"{'completion' if method == 'completion' else 'message'}"
                )
        if problem:
            raise CheckFailure(
                f"{call_name(method)} called before any iteration {problem}",
                expected="calling completion(), message() or awaiting the manager before iterating it "
                "consumes the stream and returns the result (a completion; a message)",
                reproduction=manager_reproduction(ctx, TOKENS, [_result_line(method), "print(result)"]),
            )
