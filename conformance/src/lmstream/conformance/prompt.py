"""The standard prompt: what the engine checks ask an engine to answer.

The engine checks call ``engine.stream(messages)`` (no functions, no hyperparameters) with a fresh
``list`` of these messages each time::

    [ChatMessage(role="system",
                 text="You are being tested by the lmstream conformance suite. Reply briefly."),
     ChatMessage(role="user", text="Say hello in five words or fewer.")]

The messages are :class:`lmstream.conformance.ChatMessage` objects, frozen dataclasses with ``role`` (a
``str``) and ``text``. The prompt is short so that any engine answers quickly (ES-8 asks the stream to
end within the suite's timeout).

An engine that needs its own message type (a kani engine wants ``kani.models.ChatMessage`` with a
``ChatRole``) is given its own prompt: ``messages = [...]`` (or ``make_messages()``) on a pytest
conformance class, ``--messages module:attribute`` on the command line, ``messages=`` in
:func:`lmstream.conformance.run_checks`. Whatever is given is passed through as a list, untouched.
"""

from __future__ import annotations

from typing import Final

from .messages import ChatMessage

__all__ = ["STANDARD_PROMPT", "STANDARD_PROMPT_TEXT"]

STANDARD_PROMPT_TEXT: Final = "Say hello in five words or fewer."
"""The user message of the standard prompt (what :class:`~lmstream.conformance.examples.EchoEngine`
repeats)."""

STANDARD_PROMPT: Final[tuple[ChatMessage, ...]] = (
    ChatMessage(role="system", text="You are being tested by the lmstream conformance suite. Reply briefly."),
    ChatMessage(role="user", text=STANDARD_PROMPT_TEXT),
)
"""The standard prompt: a system message and one user message, as frozen dataclasses."""
