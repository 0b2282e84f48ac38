"""Positive cases: the one-line idiom engine and manager authors use to assert conformance statically.

Put one line after the class, at module level::

    _engine_conforms: type[Engine[MyCompletion]] = MyEngine

It costs nothing at run time (one assignment; no instance is built, so constructor arguments do not
matter), and both checkers report a non-conforming class *at that line* (idiom_fail.py). Give each line
its own name: mypy rejects a second annotated ``_`` in the same scope ([no-redef]).

For an abstract class use the function form below instead (mypy refuses to assign an abstract class to
a ``type[Protocol]`` variable, [type-abstract]; see mypy_only_fail.py). The function form is also the one
to reach for when mypy's one-line message is too terse: on a mismatch it lists the conflicting members,
which mypy does not do for ``type[...]``. It may be repeated with the name ``_`` under both checkers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from kani.engines.base import BaseCompletion, BaseEngine

from lmstream.spec import Engine, ManagerFactory, StoppableStreamManager, StreamManager

from ._shapes import Manager, Msg, MyCompletion, PlainManager
from .stoppable_pass import StoppableManager


class MyEngine:
    def __init__(self, api_key: str) -> None:  # constructor arguments do not get in the way
        self._api_key = api_key

    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | MyCompletion]:
        yield "hi"
        yield MyCompletion(Msg("assistant", "hi"))


# The one-line idiom, for each Protocol an author implements.
_engine_conforms: type[Engine[MyCompletion]] = MyEngine
_manager_conforms: type[StreamManager[MyCompletion]] = PlainManager
_stoppable_conforms: type[StoppableStreamManager[MyCompletion]] = StoppableManager
_factory_conforms: ManagerFactory[MyCompletion] = Manager  # a factory is the class itself, no type[...]


# The function form: works for abstract classes too, and may be repeated as ``_``.
def _(engine: BaseEngine) -> Engine[BaseCompletion]:
    return engine


def _(engine: MyEngine) -> Engine[MyCompletion]:
    return engine
