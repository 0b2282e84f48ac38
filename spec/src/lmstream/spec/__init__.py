"""lmstream.spec: the typed contract for language-model token streams.

The Protocols an engine and a stream manager conform to, the errors a manager raises, the lifecycle
states of a stream, the requirement registry (every normative rule as data, with a stable ID), and the
engine-stream item rules as functions (:mod:`.items`) that the reference manager and the conformance
suite share.
This package depends on nothing of lmstream's and only on ``typing-extensions`` outside the standard
library.
"""

from .errors import StreamConsumedError, StreamError, StreamIncompleteError, StreamProtocolError
from .items import check_completion, check_item, check_stream, describe_item, is_completion
from .protocols import (
    Completion,
    CompletionT,
    CompletionT_co,
    Engine,
    EngineStream,
    ManagerFactory,
    Message,
    RoundStreamFactory,
    StoppableStreamManager,
    StreamManager,
)
from .registry import Group, Level, Requirement, UnknownRequirementError
from .requirements import REQUIREMENTS, SPEC_VERSION, get_requirement, select_requirements
from .state import STATE_TRANSITIONS, TERMINAL_STATES, StreamState, is_allowed_transition
from .table import format_requirement_table

__all__ = [
    "REQUIREMENTS",
    "SPEC_VERSION",
    "STATE_TRANSITIONS",
    "TERMINAL_STATES",
    "Completion",
    "CompletionT",
    "CompletionT_co",
    "Engine",
    "EngineStream",
    "Group",
    "Level",
    "ManagerFactory",
    "Message",
    "Requirement",
    "RoundStreamFactory",
    "StoppableStreamManager",
    "StreamConsumedError",
    "StreamError",
    "StreamIncompleteError",
    "StreamManager",
    "StreamProtocolError",
    "StreamState",
    "UnknownRequirementError",
    "check_completion",
    "check_item",
    "check_stream",
    "describe_item",
    "format_requirement_table",
    "get_requirement",
    "is_allowed_transition",
    "is_completion",
    "select_requirements",
]
