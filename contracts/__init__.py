"""tokenbus contracts v1: the only code the services share."""

from contracts.base import SCHEMA_VERSION, BusMessage, Token, new_id, utc_now
from contracts.chat import (
    ChatMessage,
    ChatRequest,
    ContentPart,
    GenerationParams,
    ImagePart,
    ResponseFormat,
    Role,
    TextPart,
)
from contracts.deadletter import DeadLetter
from contracts.embeddings import EmbeddingFailure, EmbeddingReply, EmbeddingRequest
from contracts.events import (
    FinishReason,
    TurnCompleted,
    TurnDelta,
    TurnEvent,
    TurnEventBase,
    TurnFailed,
    TurnUsage,
    parse_final_turn_event,
    parse_turn_event,
)
from contracts.keys import ApiKeyRecord, Limits, TenantRecord
from contracts.logprobs import TokenLogprob, TopLogprob
from contracts.titles import TITLE_MAX_CHARS, ConversationTitled, TitleRequest, TitleSource
from contracts.tools import FunctionTool, ToolCall, ToolCallDelta, ToolChoice, ToolName

__all__ = [
    "SCHEMA_VERSION",
    "TITLE_MAX_CHARS",
    "ApiKeyRecord",
    "BusMessage",
    "ChatMessage",
    "ChatRequest",
    "ContentPart",
    "ConversationTitled",
    "DeadLetter",
    "EmbeddingFailure",
    "EmbeddingReply",
    "EmbeddingRequest",
    "FinishReason",
    "FunctionTool",
    "GenerationParams",
    "ImagePart",
    "Limits",
    "ResponseFormat",
    "Role",
    "TenantRecord",
    "TextPart",
    "TitleRequest",
    "TitleSource",
    "Token",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolName",
    "TopLogprob",
    "TurnCompleted",
    "TurnDelta",
    "TurnEvent",
    "TurnEventBase",
    "TurnFailed",
    "TurnUsage",
    "new_id",
    "parse_final_turn_event",
    "parse_turn_event",
    "utc_now",
]
