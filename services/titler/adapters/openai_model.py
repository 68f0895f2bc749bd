"""The utility model through the official `openai` SDK (OpenAI and any compatible server)."""

from __future__ import annotations

import asyncio
from typing import Any

from openai import AsyncOpenAI

from services.titler.adapters.sdk_errors import SDK_ERRORS, failure_reason
from services.titler.adapters.title_call import TitleCall
from services.titler.ports import Completion, ModelCallFailed, Prompt

__all__ = ["OpenAITitleModel", "title_call_limits"]


class OpenAITitleModel:
    def __init__(self, client: AsyncOpenAI, call: TitleCall) -> None:
        self._client = client
        self._call = call

    @property
    def name(self) -> str:
        return self._call.name

    @property
    def provider_model(self) -> str:
        return self._call.upstream_model

    def _limits(self) -> dict[str, Any]:
        call = self._call
        return title_call_limits(call.max_tokens, call.temperature, call.reasoning)

    async def complete(self, prompt: Prompt) -> Completion:
        messages: list[Any] = [{"role": "system", "content": prompt.system}]
        messages += [{"role": m.role, "content": m.content} for m in prompt.messages]
        try:
            # The SDK's timeout bounds each read; this bounds the whole call.
            async with asyncio.timeout(self._call.timeout_s):
                response = await self._client.chat.completions.create(
                    model=self._call.upstream_model, messages=messages, **self._limits()
                )
        except TimeoutError:
            raise ModelCallFailed("timeout") from None
        except SDK_ERRORS as exc:
            raise ModelCallFailed(failure_reason(exc)) from None
        text = (response.choices[0].message.content or "") if response.choices else ""
        usage = response.usage
        if usage is None:
            return _estimated(messages, text)
        details = usage.prompt_tokens_details
        return Completion(
            text=text,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cached_input_tokens=(details.cached_tokens or 0) if details else 0,
        )


def title_call_limits(max_tokens: int, temperature: float, reasoning: bool) -> dict[str, Any]:
    """How long and how free a title call may be, in the parameters the model takes."""
    if reasoning:
        # Reasoning models refuse max_tokens and sampling knobs, and think over many
        # lines first: a newline stop would cut the answer off before it starts.
        return {"max_completion_tokens": max_tokens}
    # A title is one line: whatever follows the first newline is noise.
    return {"max_tokens": max_tokens, "temperature": temperature, "stop": ["\n"]}


def _estimated(messages: list[Any], text: str) -> Completion:
    # Some compatible servers send no usage; about four characters a token is the usual guess.
    prompt_chars = sum(len(str(m["content"])) for m in messages)
    return Completion(
        text=text,
        input_tokens=max(1, prompt_chars // 4),
        output_tokens=max(1, len(text) // 4) if text else 0,
        estimated=True,
    )
