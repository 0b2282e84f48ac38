"""The requirement registry: every normative rule of lmstream, as data.

This module is the single source of truth. The spec docs are rendered from :data:`REQUIREMENTS`, every
conformance check cites an ID from it, and the test suite fails if a MUST has no check.

IDs are stable: a rule's wording may be refined between versions, but an ID is never reused for a rule
with another meaning. :data:`SPEC_VERSION` follows semantic versioning: a new rule or a stricter level is
a minor (SHOULD, MAY) or major (MUST) change; a clarified wording is a patch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from .registry import Group, Level, Requirement, UnknownRequirementError

__all__ = ["REQUIREMENTS", "SPEC_VERSION", "get_requirement", "select_requirements"]

SPEC_VERSION: Final = "1.0.0"
"""The version of the lmstream specification this registry states."""

_E = Group.ENGINE_STREAM
_M = Group.MANAGER
_R = Group.ROUND
_S = Group.STOP
_STOPPABLE = "Applies to managers that offer aclose() (SM-21)."

_RULES: tuple[Requirement, ...] = (
    # ------------------------------------------------------------------ engine streams
    Requirement(
        "ES-1",
        Level.MUST,
        _E,
        "stream() returns an async iterable",
        "An engine's stream(messages, functions=None, **hyperparams) MUST return an async iterable "
        "(an object with __aiter__, such as an async generator). A list, a plain generator or a bare "
        "coroutine is not one.",
        "Managers consume the stream with async for; anything else fails at the first step, far from "
        "the engine that caused it.",
    ),
    Requirement(
        "ES-2",
        Level.MUST,
        _E,
        "every item is a token or a completion",
        "Every item the stream yields MUST be a str (a token; subclasses of str are allowed) or an object "
        "that satisfies the Completion protocol (message, prompt_tokens, completion_tokens). Errors MUST "
        "be raised, never yielded; bytes, None, numbers and dicts are violations.",
        "A consumer concatenates tokens into text; a stray item either crashes it or silently corrupts "
        "the message. A yielded error would be treated as data.",
    ),
    Requirement(
        "ES-3",
        Level.MUST,
        _E,
        "at most one completion, and it is last",
        "A stream MUST yield at most one completion, and if it yields one, the completion MUST be the "
        "last item: nothing follows it.",
        "The completion is the stream's final result; a token after it, or a second completion, leaves "
        "the result ambiguous.",
    ),
    Requirement(
        "ES-4",
        Level.MUST,
        _E,
        "token counts are None or non-negative ints",
        "A completion's prompt_tokens and completion_tokens MUST each be None (unknown) or an int >= 0 "
        "(bool is not an int here).",
        "Applications bill and budget with these numbers; a string or a negative count breaks them silently.",
    ),
    Requirement(
        "ES-5",
        Level.MUST,
        _E,
        "the iterator can be closed",
        "The stream's iterator MUST support aclose(). Once aclose(), awaited mid-stream, has returned, its "
        "cleanup MUST have run, which is observable as: (a) the iterator yields nothing more and its own "
        "finally blocks have run; (b) every async generator defined in the engine's own code that the "
        "stream iterated is closed (one left suspended, or abandoned to the garbage collector, is a "
        "violation); (c) every network response the stream opened is closed or released.",
        "A consumer that stops early must be able to release the engine's connection and any lock at "
        "once, not when the garbage collector gets to it: until then the connection stays checked out "
        "and the server keeps generating. The engine's own code is the engine's package (or, for an "
        "engine written in an application, code outside the standard library and third-party "
        "libraries). Async generators of other libraries (an HTTP client's or an SDK's internal chain) "
        "that stay suspended after their response was closed hold nothing and are not a violation; "
        "what they held is judged by (c).",
    ),
    Requirement(
        "ES-6",
        Level.MUST,
        _E,
        "cancellation propagates",
        "If the task consuming the stream is cancelled while it awaits the next item, the task MUST end "
        "with CancelledError: the stream MUST NOT swallow, replace or delay the cancellation.",
        "asyncio's timeouts, task groups and shutdown are built on cancellation; a stream that swallows "
        "it makes them hang.",
    ),
    Requirement(
        "ES-7",
        Level.MUST,
        _E,
        "each call gives a new, independent stream",
        "Every call of stream() MUST return a new stream; iterating or closing one MUST NOT affect another.",
        "Managers are iterated at most once, and retries, rounds and concurrent users call stream() "
        "again; a shared iterator would hand one reply's tokens to another.",
    ),
    Requirement(
        "ES-8",
        Level.MUST,
        _E,
        "the standard prompt's stream ends",
        "For the conformance suite's prompt (its standard prompt, or the one the engine's author gives "
        "it), the stream MUST end normally (StopAsyncIteration) within the suite's timeout.",
        "A stream that never ends hangs every consumer; the standard prompt is short enough for any "
        "engine to answer quickly.",
    ),
    Requirement(
        "ES-9",
        Level.SHOULD,
        _E,
        "the completion's text is the tokens' text",
        "When an engine yields a completion whose message text is not None, that text SHOULD equal the "
        "concatenation of the tokens yielded before it.",
        "Consumers display the tokens and store the message; a difference between them shows the user "
        "one thing and records another.",
    ),
    Requirement(
        "ES-10",
        Level.SHOULD_NOT,
        _E,
        "no empty tokens",
        "A stream SHOULD NOT yield empty-string tokens.",
        "Empty tokens cost a round trip through every consumer and can be mistaken for the end of a "
        "stream by careless code.",
    ),
    Requirement(
        "ES-11",
        Level.MAY,
        _E,
        "a completion alone is a stream",
        "A stream MAY yield no tokens at all, only a completion (for example a tool call whose message "
        "text is None), or nothing at all.",
        "Function calls have no text to stream; managers must handle a stream without tokens.",
    ),
    # ------------------------------------------------------------------ stream managers
    Requirement(
        "SM-1",
        Level.MUST,
        _M,
        "tokens pass through unchanged",
        "Iterating a manager MUST yield the engine's str items in order, each unchanged: never stripped, "
        "merged, split or dropped.",
        "Whitespace is content (code, Markdown, poetry); a manager that edits tokens corrupts what the "
        "user sees.",
    ),
    Requirement(
        "SM-2",
        Level.MUST,
        _M,
        "no read-ahead",
        "Each token MUST reach the consumer before the next item is requested from the engine.",
        "Read-ahead adds latency to every token, and keeps consuming (and paying for) a reply the "
        "consumer may be about to abandon.",
    ),
    Requirement(
        "SM-3",
        Level.MUST,
        _M,
        "iterated at most once",
        "A manager MUST be iterable at most once: a second iteration, or an iteration after completion()/"
        "message()/await has drained the stream, MUST raise StreamConsumedError before yielding anything.",
        "The engine stream can be read once; a second reader would silently see nothing.",
    ),
    Requirement(
        "SM-4",
        Level.MUST,
        _M,
        "the completion is the engine's, or built exactly",
        "completion() MUST return the engine's own completion object when the engine yielded one. "
        "Otherwise it MUST return a new completion whose message has the manager's role and text exactly "
        "equal to the concatenation of the tokens (no stripping), with token counts None.",
        "Engines carry provider data in their completions; a rebuilt message that strips whitespace "
        "loses data (kani's manager strips).",
    ),
    Requirement(
        "SM-5",
        Level.MUST,
        _M,
        "message() and await are completion().message",
        "message() MUST return completion().message, and awaiting the manager itself MUST return the "
        "same as message().",
        "Three spellings of one result must never disagree.",
    ),
    Requirement(
        "SM-6",
        Level.MUST,
        _M,
        "results before iteration consume the stream",
        "Calling completion(), message() or awaiting the manager before iterating it MUST consume the "
        "stream and return the result.",
        "Callers that want only the final message must not have to iterate by hand.",
    ),
    Requirement(
        "SM-7",
        Level.MUST,
        _M,
        "every waiter gets the same result",
        "Any number of concurrent callers of completion()/message()/await, from any tasks, before, "
        "during or after iteration, MUST all receive the same object.",
        "A UI task, a logger and a history writer commonly wait on one stream; they must agree on what "
        "was said.",
    ),
    Requirement(
        "SM-8",
        Level.MUST,
        _M,
        "engine errors reach everyone",
        "If the engine raises an exception E, the consumer's loop MUST raise E (the same object), and "
        "every pending and later completion()/message()/await MUST raise E. Nothing may hang.",
        "kani's manager leaves waiters blocked forever when the engine fails; an error must end the "
        "stream for everyone. An engine that raises CancelledError or GeneratorExit itself is not "
        "failing but cancelling or closing, so E is neither: the consumer's loop gets that exception "
        "(it arose in the consumer's task, and asyncio must see it there), while waiters get "
        "StreamIncompleteError, as for a cancelled or abandoned stream (SM-10, SM-11). Raising "
        "CancelledError in a waiter's task would end a task that nobody cancelled as cancelled (a "
        "TaskGroup or gather() around it would take it for a cancellation of theirs), and GeneratorExit "
        "means nothing outside the generator being closed.",
    ),
    Requirement(
        "SM-9",
        Level.MUST,
        _M,
        "contract violations are reported, not passed on",
        "If the engine breaks ES-2 or ES-3, the consumer and every waiter MUST get StreamProtocolError "
        "naming the broken requirement, and the non-conforming item MUST NOT reach the consumer. A manager "
        "that also checks token counts (ES-4, as the reference does) reports a bad count the same way.",
        "A protocol error is a bug in the engine; it must surface at once, attributed, not as corrupted "
        "text later.",
    ),
    Requirement(
        "SM-10",
        Level.MUST,
        _M,
        "an early stop closes the engine and releases everyone",
        "If the consumer stops early (break, aclose() of the manager's iterator, an exception in the loop "
        "body), the manager MUST close the engine stream (await its aclose()) and release the lock no later "
        "than when its own iterator is closed or finalized, and every pending and later completion()/"
        "message()/await MUST raise StreamIncompleteError carrying the text yielded so far. Nothing may "
        "hang.",
        "Abandoned streams hold connections and locks; kani's manager leaves waiters blocked forever "
        "when the consumer breaks.",
    ),
    Requirement(
        "SM-11",
        Level.MUST,
        _M,
        "cancellation propagates and releases everything",
        "If the consuming task is cancelled, CancelledError MUST propagate in that task; the engine stream "
        "MUST be closed, the lock released, and waiters in other tasks MUST get StreamIncompleteError.",
        "Cancellation is how asyncio stops work; it must not be swallowed, and it must not strand "
        "other tasks.",
    ),
    Requirement(
        "SM-12",
        Level.MUST,
        _M,
        "the lock is held for the stream, released exactly once",
        "A lock given to the manager MUST be held from before the first item is requested until the "
        "stream has ended, and released exactly once on every path: completion, engine error, protocol "
        "error, early stop and cancellation.",
        "The lock serialises a conversation's history; holding it too briefly interleaves replies, and "
        "leaking it deadlocks the next turn.",
    ),
    Requirement(
        "SM-13",
        Level.MUST,
        _M,
        "after runs once, on success only",
        "An after callback, if given, MUST be awaited exactly once with the final completion, after the "
        "engine stream ended normally and before the consumer's loop ends or any waiter is released; it "
        "MUST NOT be called on error, early stop or cancellation. If it raises X, the consumer and every "
        "waiter MUST get X.",
        "after typically appends the reply to the history; a partial or failed reply must not be "
        "recorded, and a reader must not see the result before it is recorded.",
    ),
    Requirement(
        "SM-14",
        Level.MUST,
        _M,
        "completions are accepted by shape",
        "A manager MUST accept any well-formed completion (ES-2 and ES-4: any object satisfying the "
        "Completion protocol) as the final item (structural, not nominal: no isinstance against a "
        "particular class).",
        "Engines from different frameworks have their own completion classes; the contract is the shape.",
    ),
    Requirement(
        "SM-15",
        Level.MUST,
        _M,
        "nothing left running, nothing warns",
        "When the stream has ended, no task the manager started MUST still be running, and nothing MUST "
        "warn: no never-awaited coroutine, no destroyed pending task, no unclosed async generator.",
        "Leaked tasks and generators turn into warnings at shutdown and into errors under -W error.",
    ),
    Requirement(
        "SM-16",
        Level.MUST,
        _M,
        "role is the construction role",
        "role MUST be the role the manager was built with, available before iteration; a manager built "
        "from an already finished message (SM-17) is built with that message's role.",
        "Round consumers route a message by its role before reading it.",
    ),
    Requirement(
        "SM-17",
        Level.MUST,
        _M,
        "a finished message streams as one token",
        "A manager built from an already finished message (kani's DummyStream) MUST yield its text as a "
        "single token (no token when the text is None or empty), and completion() MUST return a "
        "completion whose message is that very message object.",
        "Function results and cached replies go through the same consumer code as live streams.",
    ),
    Requirement(
        "SM-30",
        Level.MUST,
        _M,
        "a stream that is not async-iterable is refused",
        "A manager given a stream_iter that is not an async iterable (it breaks ES-1: a list, a plain "
        "generator, an object without __aiter__) MUST raise StreamProtocolError naming ES-1: when it is "
        "built, or at the latest from the first step of its iteration and from every completion()/"
        "message()/await. Nothing may hang.",
        "An engine that returns the wrong thing has a bug; reported at once and attributed to ES-1, it is "
        "found where it was made, not as a TypeError from deep inside the manager.",
    ),
    Requirement(
        "SM-31",
        Level.MUST,
        _M,
        "a protocol error closes the engine",
        "When the engine breaks ES-2 or ES-3 (SM-9), the manager MUST close the engine stream (await its "
        "aclose()) before the consumer or any waiter gets the StreamProtocolError, and an error raised by "
        "that close MUST NOT take the StreamProtocolError's place.",
        "An engine that yielded a bad item is still suspended, holding its connection; left to the garbage "
        "collector it stays open for an unknown time, and a failing close must not hide the real error.",
    ),
    Requirement(
        "SM-35",
        Level.SHOULD,
        _M,
        "errors reach every caller whole",
        "The error a manager hands out SHOULD keep what explains it. An engine's error SHOULD reach every "
        "completion()/message()/await with the traceback of the engine's own code, as it reached the "
        "consumer. When closing the engine stream raises while the manager ends the stream with an error "
        "of its own (StreamProtocolError after a protocol error, StreamIncompleteError after an early stop "
        "or a stop), that close error SHOULD be the error's __cause__ (an engine's own error is raised as "
        "it is, unannotated).",
        "Whoever reads the log of a failed reply needs to see where the engine failed and why its "
        "connection did not close; a waiter's traceback that starts at its own await, or an incomplete "
        "error that silently dropped a failing close, sends the reader to the wrong code.",
    ),
    Requirement(
        "SM-36",
        Level.SHOULD,
        _M,
        "a finished stream is freed at once",
        "Once a stream has ended, however it ended (completed, failed, left early, cancelled, stopped), "
        "and the application has dropped the manager and every result and error it got from it, the "
        "manager SHOULD be freed by reference counting alone: no reference cycle SHOULD run through the "
        "manager, the errors it keeps, their tracebacks or its frames.",
        "A server finishes thousands of replies a minute. What sits in a cycle (the manager, the engine "
        "stream and its HTTP response, the whole reply text) stays in memory until the cyclic garbage "
        "collector runs, many allocations later under load, and never in a server that calls "
        "gc.freeze() or gc.disable() before it forks its workers.",
    ),
    # ------------------------------------------------------------------ round streams
    Requirement(
        "SM-18",
        Level.MUST,
        _R,
        "one manager at a time, the skipped ones drained",
        "A round stream (see RoundStreamFactory) MUST yield its managers one at a time and MUST produce "
        "the next manager only after the previous one's stream has ended. A manager the consumer did not "
        "iterate MUST be drained (as if completion() were awaited) before the next one is produced.",
        "Each message of a function-calling round depends on the previous one; a skipped manager must "
        "still produce its message, or the round cannot continue.",
    ),
    Requirement(
        "SM-19",
        Level.MUST,
        _R,
        "an error ends the round",
        "If a manager of the round fails (engine error, protocol error, after raised) or ends incomplete "
        "or stopped, the round stream MUST produce no further manager, and its next step MUST raise that "
        "same error (StreamIncompleteError for an incomplete or stopped manager).",
        "A round cannot continue from a message that does not exist; silently ending would look like "
        "success.",
    ),
    Requirement(
        "SM-20",
        Level.MUST,
        _R,
        "closing the round stops the current manager",
        "Closing the round stream (break, aclose(), cancellation of its consumer) MUST stop the current "
        "manager as an early stop (SM-10, or SM-11 on cancellation) and produce nothing more; no lock "
        "stays held and nothing hangs.",
        "A user who abandons a round abandons all of it, including the stream in flight.",
    ),
    Requirement(
        "SM-33",
        Level.MUST,
        _R,
        "the managers of a round have the right role",
        "Every manager a round stream produces MUST have, as its role (SM-16), the round's role when its "
        "step is an engine stream, and the message's role when its step is an already finished message "
        "(SM-17).",
        "A round mixes the model's replies with tool results; a consumer routes each message by its role "
        "before reading it, and a tool result shown as the model's words misleads the user.",
    ),
    # ------------------------------------------------------------------ stopping a stream
    Requirement(
        "SM-21",
        Level.SHOULD,
        _S,
        "a manager can be stopped",
        "A manager SHOULD offer aclose(), a coroutine method that stops the stream, and state, a "
        "read-only StreamState (the StoppableStreamManager protocol). A manager that offers aclose() MUST "
        "keep SM-22 to SM-28.",
        "A chat server must stop a reply when the user clicks stop, from a task other than the one "
        "sending tokens; without a manager-level stop, nobody can.",
    ),
    Requirement(
        "SM-22",
        Level.MUST,
        _S,
        "aclose() from any task, any time, any number of times",
        "aclose() MUST be safe to await from any task, at any time (before, during and after iteration), "
        "any number of times, concurrently; every call MUST return only when the stop is complete: the "
        "engine stream closed, the lock released and state terminal. (A call made from inside the "
        "manager's own step, from after or from the engine's code, cannot wait for that step: it MUST "
        "return without waiting, and the stop takes effect as SM-23 and SM-24 say.)",
        "Stop buttons are clicked twice, and stop requests race with the end of the stream.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-23",
        Level.MUST,
        _S,
        "a stop after the end changes nothing",
        "Once the engine stream has ended normally, aclose() MUST change nothing: after (if running) runs "
        "to its end, and the stream completes (or fails, if after raises) exactly as it would have.",
        "A reply that has fully arrived must not be thrown away because a stop raced its last token.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-24",
        Level.MUST,
        _S,
        "a stop during iteration ends the loop cleanly",
        "A stop during iteration MUST end the consumer's loop, in whatever task it runs, at its next step "
        "without an exception, even when the engine is at that moment blocked awaiting its next item (the "
        "stop MUST NOT wait for the engine to produce one). The engine stream MUST be closed (its aclose() "
        "awaited; one without aclose() MUST NOT be asked for another item), the lock released once, "
        "after never called, and every pending and later completion()/message()/await MUST raise "
        "StreamIncompleteError with reason stopped and the text yielded so far.",
        "A stop is a user's decision, not an error; the partial reply is kept and the provider "
        "connection is closed at once, not after the next token.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-25",
        Level.MUST,
        _S,
        "a stop before iteration",
        "A stop before iteration MUST close the engine stream without iterating it (awaiting its aclose() "
        "where it has one); a later iteration MUST yield nothing, and results MUST raise "
        "StreamIncompleteError with reason stopped and empty text.",
        "A request cancelled before its reply began must not start the reply.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-26",
        Level.MUST,
        _S,
        "a stop never leaks a cancellation",
        "A stop MUST NOT leave the consumer's task cancelled (on Python 3.11+ its cancelling() count is "
        "what it was before the stop), asyncio.timeout() and TaskGroup around the consumer MUST keep "
        "working, and a real cancellation of the consumer that arrives at the same time MUST still "
        "propagate as CancelledError (SM-11 keeps priority), carrying no message of the stop's own (its own "
        "message, when it arrived first).",
        "A stop implemented with Task.cancel() and no uncancel() bookkeeping makes the next timeout in "
        "that task fire as a cancellation, or swallows a real one.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-27",
        Level.MUST,
        _S,
        "state tells where the stream stands, moving forward only",
        "state MUST always be a StreamState: pending until something is requested, streaming while the "
        "lock is awaited, the engine read or after run, then exactly one of completed, failed (engine "
        "error, protocol error or after raised), incomplete (consumer stopped early or was cancelled) or "
        "stopped (aclose()). It MUST change only along STATE_TRANSITIONS and never after reaching a "
        "terminal state.",
        "A server deciding whether to save, retry or report a reply needs to know how it ended.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-28",
        Level.MUST,
        _S,
        "the incomplete error says why and what",
        "StreamIncompleteError.reason MUST be StreamState.STOPPED when aclose() stopped the stream and "
        "StreamState.INCOMPLETE when the consumer stopped early or was cancelled, equal to the manager's "
        "final state, and its text MUST be exactly the concatenation of the tokens the manager handed out "
        "before the stop: those the consumer's loop received or, when a completion()/message()/await "
        "call was driving the stream because nobody iterated it (SM-6), those that call read.",
        "The partial reply is saved or shown again; losing or inventing a token misrepresents what the "
        "user saw.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-29",
        Level.SHOULD,
        _S,
        "a stop from another event loop works or fails at once",
        "aclose() awaited on an event loop other than the one the stream runs on (a sync handler's "
        "asyncio.run(stream.aclose()) in a worker thread) SHOULD either stop the stream as SM-22 to "
        "SM-28 say or raise RuntimeError at once, with a one-line message that names the method and "
        "asyncio.run_coroutine_threadsafe, as in asyncio.run_coroutine_threadsafe(stream.aclose(), loop), "
        "and leave the stream exactly as it was, so that a stop from its own loop still works. The same "
        "holds for completion(), message() and await on another loop once the stream is bound to its own "
        "(iterated, or awaited there): they SHOULD either return the stream's result when it ends or "
        "raise that RuntimeError at once.",
        "Flask and Django views and Gradio callbacks run in threads of their own, and asyncio is not "
        "thread-safe: a stop run on the handler's own loop cancels a task, sets an event or releases a "
        "lock of another loop from the wrong thread. It does not fail; it corrupts the stream: the stop "
        "never returns while the engine is blocked, a later result raises 'bound to a different event "
        "loop', the next holder of the lock wakes seconds late, or the stream stays streaming and every "
        "waiter hangs. A stop that refuses at once, saying what works, costs the author one line.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-34",
        Level.SHOULD,
        _S,
        "a stop costs the same whatever else the loop runs",
        "A stop SHOULD NOT look at the event loop's other tasks when the step it interrupts runs in the "
        "task that began the iteration, or awaits a future its chain of awaits leads to; where it must "
        "search them (a step in a task of its own, awaiting something that does not say what it awaits), "
        "it SHOULD let the loop run between slices of that search, never looking at more than 1,000 tasks "
        "without yielding to the loop.",
        "A chat server runs thousands of tasks and stops streams all the time (stop buttons, client "
        "disconnects, shutdown). A stop that searches every task's chain of awaits costs milliseconds per "
        "stop at 10,000 tasks, makes stopping M streams quadratic in M, and freezes every other client "
        "while it runs.",
        _STOPPABLE,
    ),
    Requirement(
        "SM-32",
        Level.MUST,
        _S,
        "a loop ended by a stop ends once the stop is complete",
        "When a stop ends the consumer's loop (SM-24), the loop MUST end only once the stop is complete: at "
        "that moment the engine stream is closed (its cleanup has run), the lock released and state "
        "terminal, as when aclose() returns (SM-22), even while the stop is made from another task.",
        "The consumer's code after its loop saves the partial reply or starts the next turn under the same "
        "lock; a loop that ends while another task is still closing the engine lets that code see a stream "
        "that is not yet final, and start the next turn before the lock is released.",
        _STOPPABLE,
    ),
)

REQUIREMENTS: Final[Mapping[str, Requirement]] = MappingProxyType({r.id: r for r in _RULES})
"""Every requirement by ID, in document order (engine streams, managers, rounds, stop)."""

if len(REQUIREMENTS) != len(_RULES):  # pragma: no cover - guards edits to the table above
    raise RuntimeError("duplicate requirement ID in the registry")


def get_requirement(requirement_id: str) -> Requirement:
    """Return the requirement with this ID.

    :raises UnknownRequirementError: naming the ID and the known ranges, if there is none.
    """
    try:
        return REQUIREMENTS[requirement_id]
    except KeyError:
        raise UnknownRequirementError(
            f"unknown requirement ID {requirement_id!r}; expected one of {_id_ranges()}"
        ) from None


def select_requirements(
    *, group: Group | None = None, levels: Iterable[Level] | None = None
) -> tuple[Requirement, ...]:
    """The requirements of one group and/or some levels, in document order."""
    wanted = None if levels is None else frozenset(levels)
    return tuple(
        r
        for r in REQUIREMENTS.values()
        if (group is None or r.group is group) and (wanted is None or r.level in wanted)
    )


def _id_ranges() -> str:
    prefixes: dict[str, list[int]] = {}
    for rid in REQUIREMENTS:
        prefix, number = rid.split("-")
        prefixes.setdefault(prefix, []).append(int(number))
    return ", ".join(f"{p}-{min(ns)}..{p}-{max(ns)}" for p, ns in prefixes.items())
