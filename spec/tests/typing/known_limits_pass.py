"""Known limits: things both checkers accept although the contract forbids them at run time.

Static types cannot express every rule; these are accepted by both checkers, and kept here so that a
Protocol change that starts rejecting one shows up (as an error in this file) rather than going unnoticed.
What catches each at run time is named next to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from typing_extensions import assert_type

from lmstream.spec import Completion, Engine, EngineStream, ManagerFactory

from ._shapes import Msg, MyCompletion


# ``bool`` is a subclass of ``int``, so ``True`` passes as a token count; negative counts are ``int`` too.
# ES-4 rejects both at run time (``lmstream.spec.check_completion``).
@dataclass(frozen=True)
class BoolTokens:
    message: Msg
    prompt_tokens: bool
    completion_tokens: int


bool_tokens: Completion = BoolTokens(Msg("assistant", "x"), True, -1)


# An async iterator without ``aclose()`` is an ``EngineStream``: ES-5 (``aclose()`` and cleanup) is
# checked at run time by the conformance suite, because kani annotates its streams as ``AsyncIterable``.
class NoAcloseIterator:
    def __aiter__(self) -> NoAcloseIterator:
        return self

    async def __anext__(self) -> str:
        raise StopAsyncIteration


no_aclose: EngineStream[Completion] = NoAcloseIterator()


# A token-only engine is an ``Engine[C]`` for every ``C`` (``str`` alone is a valid item type), so a
# manager over it is typed to return ``C`` from ``completion()``. But the engine yields no completion:
# the manager builds its own (SM-4), which is not a ``MyCompletion``. The static type is then wrong at
# run time. Only engines that always yield their completion make ``StreamManager[C]`` exact.
class TokenOnlyEngine:
    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[str]:
        yield "hi"


async def synthesized_completion_is_typed_as_the_engines(factory: ManagerFactory[MyCompletion]) -> None:
    engine: Engine[MyCompletion] = TokenOnlyEngine()
    manager = factory(engine.stream([]), "assistant")
    assert_type(await manager.completion(), MyCompletion)  # at run time: the manager's own completion
