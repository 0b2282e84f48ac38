"""What a check left behind, said once and about its owner: the notes for leftover tasks and async generators.

At the end of a check the runner cancels the tasks still running and closes the async generators left
open. Whose they are decides what is said (:mod:`lmstream.conformance._origins` tells):

* the **target's own** task or async generator: one note each, as it is the engine author's to fix (but
  not an async generator of the target's code that a library iterated on its own behalf);
* a **library's** (or the standard library's) async generator left suspended, and the event loop's task
  closing one that was dropped (``async_generator_athrow``): nothing. httpx, httpcore and the SDKs leave
  their internal iterator chains suspended after their response is closed, which holds nothing; whether
  the stream released its network responses is ES-5's rule (c), judged where it is observed;
* a library's task still running (a coroutine of its own, not the loop closing a generator): one note per
  library, naming it and counting its tasks.

:func:`quiet_captured` folds the warnings about sockets garbage-collected open (an HTTP client's idle
pool, which outlives each check's event loop) into one such library note, and :func:`once_per_run` keeps
each library's note only the first time it appears in a run's results.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterable, Sequence
from types import AsyncGeneratorType, CodeType
from typing import Any

from ._origins import Origin, Origins, Owner

__all__ = ["LIBRARY_NOTE_PREFIX", "leftover_notes", "once_per_run", "quiet_captured"]

LIBRARY_NOTE_PREFIX = "library leftovers: "
"""How a note about a library's leftovers starts (so that :func:`once_per_run` can find it)."""


def leftover_notes(
    origins: Origins,
    tasks: Iterable[asyncio.Task[Any]],
    asyncgens: Iterable[AsyncGeneratorType[Any, Any]],
    *,
    describe_agen: Callable[[AsyncGeneratorType[Any, Any]], str],
    iterated_by: Callable[[AsyncGeneratorType[Any, Any]], CodeType | None],
) -> list[str]:
    """The notes for the tasks still running at the end of a check (cancelled by the suite) and the async
    generators left open (closed by the suite), as the module docstring says.

    :param describe_agen: how an async generator is named (the runner's own wording).
    :param iterated_by: the code that first iterated an async generator, when known: one of the target's
        own that a library iterates on its own behalf (a transport body given to httpx) is the library's
        to close, so it is not reported.
    """
    notes: list[str] = []
    library_tasks: dict[str, list[str]] = {}
    for task in tasks:
        coro = task.get_coro()
        closing = _generator_closed_by(coro)
        if closing is not None:
            if origins.of_code(closing.ag_code).is_target:
                notes.append(
                    f"task {task.get_name()!r} was still closing {describe_agen(closing)}, which the target "
                    "dropped unclosed, when the check ended; the suite cancelled it"
                )
            continue
        origin = _origin_of(origins, coro)
        if origin is None or origin.is_target or origin.owner is Owner.LMSTREAM:
            notes.append(
                f"task {task.get_name()!r} ({_coro_name(coro)}) was still running when the check ended; "
                "the suite cancelled it"
            )
        else:
            library_tasks.setdefault(origin.label(), []).append(f"{task.get_name()!r} ({_coro_name(coro)})")
    for agen in asyncgens:
        by = iterated_by(agen)
        iterated_by_library = by is not None and origins.of_code(by).owner in (Owner.LIBRARY, Owner.STDLIB)
        if origins.of_code(agen.ag_code).is_target and not iterated_by_library:
            notes.append(
                f"async generator {describe_agen(agen)} was left open, never closed; the suite closed it"
            )
    for library, names in library_tasks.items():
        notes.append(
            f"{LIBRARY_NOTE_PREFIX}{library} left {len(names)} task(s) running when the check ended: "
            f"{', '.join(names)}; the suite cancelled them"
        )
    return notes


_CLIENT_LEFTOVERS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "asyncio",
        ("ResourceWarning: unclosed transport <_Selector", "ResourceWarning: unclosed <socket.socket"),
        "socket(s) or socket transport(s) open when the check's event loop closed (an HTTP client's idle "
        "pooled connections, garbage-collected after the loop",
    ),
    (
        "aiohttp",
        ("Unclosed client session", "Unclosed connector"),
        "client session(s) or connector(s) unclosed when the check ended (the engine's session, dropped "
        "with the engine",
    ),
)


def quiet_captured(lines: Sequence[str]) -> list[str]:
    """The lines captured during a check, with the warnings about an HTTP client's pool left open (sockets
    and transports garbage-collected open, aiohttp's unclosed session and connector) folded into one library
    note per library: every check runs in an event loop of its own, which an engine's long-lived client
    outlives, and that is not something the stream left open mid-response (that is ES-5's rule (c),
    judged where it is observed)."""
    kept = list(lines)
    notes: list[str] = []
    for library, markers, what in _CLIENT_LEFTOVERS:
        found = [line for line in kept if any(marker in line for marker in markers)]
        if found:
            kept = [line for line in kept if line not in found]
            notes.append(
                f"{LIBRARY_NOTE_PREFIX}{library} left {len(found)} {what}; close the client, e.g. "
                "`await client.aclose()`, where the engine's life ends)"
            )
    return kept + notes


def once_per_run(messages: Sequence[str]) -> list[str]:
    """``messages`` (one per result, in order) with each library's leftovers note kept only the first time
    that library is named: at most one note per library per run."""
    seen: set[str] = set()
    kept: list[str] = []
    for message in messages:
        lines: list[str] = []
        for line in message.split("\n"):
            text = line.removeprefix("note: ")
            if text.startswith(LIBRARY_NOTE_PREFIX):
                library = text[len(LIBRARY_NOTE_PREFIX) :].split(" left ", 1)[0]
                if library in seen:
                    continue
                seen.add(library)
            lines.append(line)
        kept.append("\n".join(lines))
    return kept


def _generator_closed_by(coro: object) -> AsyncGeneratorType[Any, Any] | None:
    """The async generator an ``async_generator_athrow`` awaitable (the loop's ``aclose()`` of a dropped
    generator) closes, else ``None``."""
    if type(coro).__name__ not in ("async_generator_athrow", "async_generator_asend"):
        return None
    for referent in gc.get_referents(coro):
        if isinstance(referent, AsyncGeneratorType):
            return referent  # pyright: ignore[reportUnknownVariableType] - an async generator of anything
    return None


def _origin_of(origins: Origins, coro: object) -> Origin | None:
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    return origins.of_code(code) if isinstance(code, CodeType) else None


def _coro_name(coro: object) -> str:
    return getattr(coro, "__qualname__", None) or type(coro).__name__
