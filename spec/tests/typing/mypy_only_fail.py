# pyright: reportUnnecessaryTypeIgnoreComment=false
"""Checker disagreements: lines mypy reports and pyright (rightly) accepts. Both are mypy limits.

Every marked line here carries ``# type: ignore[<mypy code>]  # mypy-only: <why>``. pyright honours a
``# type: ignore`` on any line but, seeing no error, would report it as unnecessary; the comment on the
first line turns that report off for this file only (pyright has no per-line way to do it). So here only
mypy's ``warn_unused_ignores`` guards the markers; ``test_typing_cases.py`` checks the pyright side
instead: with the markers stripped, mypy must report each line and pyright must not. If pyright ever
starts reporting one, or mypy stops, the runner fails and the case moves to the matching file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from kani.engines.base import BaseCompletion, BaseEngine

from lmstream.spec import Completion, Engine, ManagerFactory

from ._shapes import Manager, Msg, MyCompletion

C = TypeVar("C", bound=Completion)

# The one-line idiom on an abstract class. mypy: "Can only assign concrete classes to a variable of type
# "type[Engine[BaseCompletion]]"" (a ``type[P]`` variable may be called, and an abstract class cannot be
# instantiated). pyright allows it. Use the function form from idiom_pass.py for abstract classes.
_abstract: type[Engine[BaseCompletion]] = BaseEngine  # type: ignore[type-abstract]  # mypy-only: abstract


class GeneratorEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | MyCompletion]:
        yield MyCompletion(Msg("assistant", None))


async def run(engine: Engine[C], factory: ManagerFactory[C]) -> C:
    return await factory(engine.stream([]), "assistant").completion()


async def generic_class_as_factory() -> None:
    # A generic class passed, unspecialised, where a ``ManagerFactory[C]`` is expected next to an
    # ``Engine[C]``: mypy solves ``C`` as ``Never`` ("Argument 1 to "run" has incompatible type
    # "GeneratorEngine"; expected "Engine[Never]""); pyright solves ``C = MyCompletion``. Spell the type
    # argument out (``Manager[MyCompletion]``, generics_pass.py) or pass a typed variable.
    await run(GeneratorEngine(), Manager)  # type: ignore[arg-type]  # mypy-only: solves C as Never
