"""Positive cases: kani's types (kani 1.10, a test-only dependency) where they conform statically.

kani's ``ChatMessage`` is a ``Message`` (its ``role`` is the ``ChatRole`` enum), its ``Completion`` and
``BaseCompletion`` are ``Completion``, and a ``BaseEngine`` subclass is an ``Engine[BaseCompletion]``,
whether it relies on the inherited ``stream()`` or overrides it with an async generator. The precise
completion type (``BaseCompletion``) flows through a generic function.

kani's ``StreamManager`` does not conform statically, only at run time: see kani_fail.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from kani.engines.base import BaseCompletion, BaseEngine
from kani.engines.base import Completion as KaniCompletion
from kani.models import ChatMessage, ChatRole
from typing_extensions import assert_type

from lmstream.spec import Completion, Engine, Message

C = TypeVar("C", bound=Completion)

kani_message: Message = ChatMessage(role=ChatRole.ASSISTANT, content="hi")
kani_tool_call: Message = ChatMessage(role=ChatRole.ASSISTANT, content=None)
kani_completion: Completion = KaniCompletion(ChatMessage(role=ChatRole.ASSISTANT, content="hi"), 3, 1)


def base_completion_is_a_completion(completion: BaseCompletion) -> Completion:
    return completion  # the abstract base class conforms, so every kani completion does


class PredictOnlyEngine(BaseEngine):
    """A kani engine that implements only the required interface; ``stream()`` is inherited."""

    max_context_size = 1000

    def prompt_len(self, messages: Any, functions: Any = None, **kwargs: Any) -> Any:  # kani: sync or async
        return 0

    async def predict(self, messages: Any, functions: Any = None, **hyperparams: Any) -> BaseCompletion:
        return KaniCompletion(ChatMessage(role=ChatRole.ASSISTANT, content="hi"))


class StreamingEngine(PredictOnlyEngine):
    """A kani engine that streams, overriding ``stream()`` with an async generator."""

    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | BaseCompletion]:
        yield "hi"
        yield KaniCompletion(ChatMessage(role=ChatRole.ASSISTANT, content="hi"))


predict_only: Engine[BaseCompletion] = PredictOnlyEngine()
predict_only_bare: Engine[Completion] = PredictOnlyEngine()
streaming: Engine[BaseCompletion] = StreamingEngine()


async def last_completion(engine: Engine[C]) -> C:
    async for item in engine.stream([]):
        if not isinstance(item, str):
            return item
    raise LookupError("the engine yielded no completion")


async def kani_completion_type_flows() -> None:
    assert_type(await last_completion(StreamingEngine()), BaseCompletion)
    assert_type(await last_completion(PredictOnlyEngine()), BaseCompletion)
