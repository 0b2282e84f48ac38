"""Positive cases: the precise completion type flows from the engine to whoever consumes it.

Covers ``assert_type`` on ``completion()`` of a manager built over a typed engine (directly, through a
``ManagerFactory`` and through the ``StreamManager`` Protocol), ``StreamManager[Completion]`` as "any
manager", and generic functions that take any ``Engine[C]`` (and a ``ManagerFactory[C]``) and return
``C``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from typing_extensions import assert_type

from lmstream.spec import Completion, Engine, ManagerFactory, Message, StreamManager

from ._shapes import Manager, Msg, MyCompletion

C = TypeVar("C", bound=Completion)


class GeneratorEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | MyCompletion]:
        yield "hi"
        yield MyCompletion(Msg("assistant", "hi"))


async def last_completion(engine: Engine[C]) -> C:
    """Any engine in, its own completion type out."""
    async for item in engine.stream([]):
        if not isinstance(item, str):
            return item
    raise LookupError("the engine yielded no completion")


async def run(engine: Engine[C], factory: ManagerFactory[C]) -> C:
    """Any engine and any factory over the same completion type in, that completion type out."""
    manager = factory(engine.stream([]), "assistant")
    async for _token in manager:
        pass
    return await manager.completion()


async def cases(
    factory: ManagerFactory[MyCompletion],
    typed: StreamManager[MyCompletion],
    any_manager: StreamManager[Completion],
) -> None:
    engine = GeneratorEngine()

    # A manager constructed over the engine's stream infers the engine's completion type.
    manager = Manager(engine.stream([]), "assistant")
    assert_type(await manager.completion(), MyCompletion)

    # The same through the Protocols: a factory typed over MyCompletion, and a typed StreamManager.
    assert_type(await factory(engine.stream([]), "assistant").completion(), MyCompletion)
    assert_type(await typed.completion(), MyCompletion)
    assert_type(await typed.message(), Message)
    assert_type(await typed, Message)

    # "Any manager" is spelled StreamManager[Completion] (the TypeVars have no default, see protocols.py).
    assert_type(await any_manager.completion(), Completion)

    # Generic functions over any Engine[C] give C back.
    assert_type(await last_completion(engine), MyCompletion)
    assert_type(await run(engine, factory), MyCompletion)
    # A generic class as the factory: spell the type argument out for mypy (see mypy_only_fail.py).
    assert_type(await run(engine, Manager[MyCompletion]), MyCompletion)


# The generic manager class is a ManagerFactory over any completion type.
factory_my: ManagerFactory[MyCompletion] = Manager
factory_any: ManagerFactory[Completion] = Manager
