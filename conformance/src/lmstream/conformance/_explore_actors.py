"""The actors of an explored example (:class:`~lmstream.conformance.stateful.ManagerMachine`): the
application's loop over the manager (:class:`Consumer`) and the tasks awaiting its result (:class:`Waiter`).

Each actor runs in a task of its own and does only what it is told. It records what the manager did (the
tokens, how the loop ended, the value or the error) rather than raising it, except a cancellation, which ends
its task cancelled; and it judges nothing: the invariants are :mod:`._explore_checks`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from lmstream.spec import StreamIncompleteError, describe_item

from .checks._manager_support import ResultMethod, result_of
from .describe import describe_exception

__all__ = ["Consumer", "Waiter"]


class Consumer:
    """The application's loop, one command at a time: ``step`` (one token), ``drain`` (to the end),
    ``break`` (drop the iterator), ``aclose`` (close it). The iterator is kept in an attribute, never in a
    frame's locals, so that leaving the loop in any way drops it, as an ``async for`` does."""

    def __init__(self, proxy: Any, stopped: Callable[[], bool]) -> None:
        self.proxy = proxy
        self.stopped = stopped
        self.commands: asyncio.Queue[str] = asyncio.Queue()
        self.tokens: list[object] = []
        self.claimed = False
        self.refused: BaseException | None = None
        self.ended = False
        self.left: str | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.in_step = False
        self.after_stop: list[str] = []
        self._iterator: Any = None

    @property
    def over(self) -> bool:
        return (
            self.ended
            or self.left is not None
            or self.error is not None
            or self.cancelled
            or self.refused is not None
        )

    async def run(self) -> None:
        try:
            self._iterator = self.proxy.__aiter__()
        except Exception as exc:
            self.refused = exc
            return
        self.claimed = True
        try:
            while True:
                command = await self.commands.get()
                if command in ("break", "aclose"):
                    self.left = command
                    if command == "aclose":
                        await self._iterator.aclose()
                    return
                while True:
                    if await self._step() or command == "step":
                        break
                if self.ended:
                    return
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except Exception as exc:
            self.error = exc
        finally:
            self._iterator = None

    async def _step(self) -> bool:
        """One request; whether the loop is over."""
        after_stop = self.stopped()
        self.in_step = True
        try:
            token = await self._iterator.__anext__()
        except StopAsyncIteration:
            self.ended = True
            return True
        except BaseException as exc:
            if after_stop and not isinstance(exc, asyncio.CancelledError):
                self.after_stop.append(f"it raised {describe_exception(exc)}")
            raise
        finally:
            self.in_step = False
        self.tokens.append(token)
        if after_stop:
            self.after_stop.append(f"it yielded {describe_item(token)}")
        return False


class Waiter:
    """A task awaiting the result, with what it got.

    When nobody iterated the manager (a waiter drove the stream, SM-6), validate_manager() cannot see the
    tokens that waiter read, so a StreamIncompleteError it gets is marked ``unverified`` and its text is
    judged against the engine's tokens instead.
    """

    def __init__(self, proxy: Any, method: str, unread: Callable[[], bool], *, final: bool = False) -> None:
        self.proxy = proxy
        self.method = method
        self.unread = unread
        self.final = final
        self.kind = ""
        self.value: object = None
        self.unverified = False
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            value = await result_of(self.proxy, cast(ResultMethod, self.method))
        except StreamIncompleteError as exc:
            self.kind, self.value, self.unverified = "error", exc, self.unread()
            return
        except Exception as exc:
            self.kind, self.value = "error", exc
            return
        self.kind, self.value = "value", value

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def outcome(self) -> tuple[str, object] | None:
        """``("value", v)``, ``("error", e)``, ``("cancelled", None)``, or ``None`` while pending."""
        if self.task is None or not self.task.done():
            return None
        if self.task.cancelled():
            return ("cancelled", None)
        return (self.kind, self.value)
