"""OpenAI Chat Completions on top of a turn: request translation, streaming, collecting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from contracts import (
    GenerationParams,
    TurnCompleted,
    TurnDelta,
    TurnUsage,
    new_id,
    utc_now,
)
from services.gateway.admission.prompt_size import check_context
from services.gateway.caller import Caller
from services.gateway.catalog import chat_model, check_output_limit
from services.gateway.config import GatewaySettings
from services.gateway.jobs.models import NewJob
from services.gateway.openai.images import ImageLimits, read_messages
from services.gateway.openai.request_fields import check_fields
from services.gateway.openai.schema import ChatCompletionRequest
from services.gateway.openai.tools import check_tools_supported, to_tool_choice
from services.gateway.openai.wire import (
    DONE,
    HEARTBEAT,
    ChunkWriter,
    completion_body,
    output_mark,
)
from services.gateway.turns.collect import finished_turn
from services.gateway.turns.items import (
    Heartbeat,
    Reset,
    TurnFeed,
    TurnRef,
    restarted_after_text,
)
from services.gateway.turns.request import PreparedTurn, TurnSpec, chat_request
from services.runtime.catalog import Catalog

__all__ = ["PreparedTurn", "collect_completion", "stream_completion", "to_chat_request"]


def to_chat_request(
    body: ChatCompletionRequest,
    settings: GatewaySettings,
    catalog: Catalog,
    caller: Caller,
    correlation_id: str,
) -> PreparedTurn:
    """The bus request of a completion or a job, or the 4xx that says why there is none."""
    entry = chat_model(catalog, body.model)
    limit = body.output_limit
    check_output_limit(entry, limit)
    read = read_messages(
        body.messages, entry, ImageLimits(settings.max_images, settings.max_image_bytes)
    )
    check_fields(body.model_dump(exclude_unset=True), set(type(body).model_fields), entry)
    tools = body.tool_contracts
    check_tools_supported(entry, tools)
    check_context(entry, read.messages, tools, limit)
    turn_id = new_id()
    spec = TurnSpec(
        # A stateless completion is a conversation of one turn.
        conversation_id=turn_id,
        turn_id=turn_id,
        correlation_id=correlation_id,
        messages=read.messages,
        tools=tools,
        tool_choice=to_tool_choice(body.tool_choice),
        parallel_tool_calls=body.parallel_tool_calls,
        params=GenerationParams(
            max_tokens=limit,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=body.stop_sequences,
            seed=body.seed,
            frequency_penalty=body.frequency_penalty,
            presence_penalty=body.presence_penalty,
            logit_bias=body.logit_bias,
            reasoning_effort=body.reasoning_effort,
            response_format=body.response_format and body.response_format.to_contract(),
            # false asks for nothing: the bus request reads as one without the field.
            logprobs=body.logprobs or None,
            top_logprobs=body.top_logprobs,
        ),
        # Nobody reads a job or a non-streamed answer as it comes: the generator may
        # ask again, unseen, for a structured answer that fails its check.
        buffered=isinstance(body, NewJob) or not body.stream,
    )
    return PreparedTurn(chat_request(spec, entry, caller, settings, utc_now()), read.uploads)


def completion_id(turn: TurnRef) -> str:
    return f"chatcmpl-{turn.turn_id}"


async def stream_completion(events: TurnFeed, include_usage: bool) -> AsyncIterator[bytes]:
    """SSE bytes for one turn; leaving early (client gone) closes the feed."""
    turn = events.turn
    writer = ChunkWriter(completion_id(turn), turn.model, include_usage)
    usage: TurnUsage | None = None
    sent_text = False
    try:
        # Headers and a first chunk go out at once, before the model's first token.
        yield writer.role()
        async for item in events:
            if isinstance(item, TurnDelta):
                sent_text = True
                if item.text or item.logprobs:
                    yield writer.delta(item.text, item.logprobs)
                if item.tool_calls:
                    yield writer.tool_calls(item.tool_calls)
            elif isinstance(item, Heartbeat):
                yield HEARTBEAT
            elif isinstance(item, Reset):
                if sent_text:
                    # OpenAI's format cannot take text back: end cleanly, not garbled.
                    yield writer.error(restarted_after_text(turn))
                    return
            elif isinstance(item, TurnUsage):
                usage = item
            elif isinstance(item, TurnCompleted):
                finish = writer.finish(item.finish_reason, item.from_cache, output_mark(item))
                yield finish + writer.usage(usage) + DONE
            else:
                yield writer.error(item)
    finally:
        events.close()


async def collect_completion(events: TurnFeed) -> dict[str, Any]:
    done, transcript = await finished_turn(events)
    # done.model names the model that answered, after any failover.
    return completion_body(
        completion_id(events.turn),
        done.model,
        transcript.text,
        done.finish_reason,
        transcript.usage,
        done.from_cache,
        transcript.tool_calls,
        output_mark(done),
        transcript.logprobs,
    )
