"""lmstream.reference: the reference stream manager.

:class:`StreamManager` keeps every manager requirement of the lmstream spec, can be stopped from any task
(:meth:`StreamManager.aclose`), reports where it stands (:attr:`StreamManager.state`), and has kani's
constructor signature, so it replaces ``kani.streaming.StreamManager``. :func:`round_stream` is the
reference round stream (one manager per message of a function-calling round).
"""

from .manager import StreamManager
from .messages import ChatMessage, Completion, CompletionBuilder, build_completion
from .rounds import NextStep, round_stream

__all__ = [
    "ChatMessage",
    "Completion",
    "CompletionBuilder",
    "NextStep",
    "StreamManager",
    "build_completion",
    "round_stream",
]
