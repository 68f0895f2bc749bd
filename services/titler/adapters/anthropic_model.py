"""The utility model through the official `anthropic` SDK (Messages API)."""

from __future__ import annotations

import asyncio
from typing import Any

from anthropic import AsyncAnthropic

from services.titler.adapters.sdk_errors import SDK_ERRORS, failure_reason
from services.titler.adapters.title_call import TitleCall
from services.titler.ports import Completion, ModelCallFailed, Prompt

__all__ = ["AnthropicTitleModel"]


class AnthropicTitleModel:
    def __init__(self, client: AsyncAnthropic, call: TitleCall) -> None:
        self._client = client
        self._call = call

    @property
    def name(self) -> str:
        return self._call.name

    @property
    def provider_model(self) -> str:
        return self._call.upstream_model

    async def complete(self, prompt: Prompt) -> Completion:
        # The prompt alternates user/assistant and ends with the user, as Anthropic requires.
        # No newline stop sequence: the API refuses whitespace-only ones. No temperature
        # either: this SDK no longer takes sampling parameters (current models refuse them).
        messages: list[Any] = [{"role": m.role, "content": m.content} for m in prompt.messages]
        try:
            async with asyncio.timeout(self._call.timeout_s):
                response = await self._client.messages.create(
                    model=self._call.upstream_model,
                    max_tokens=self._call.max_tokens,
                    system=prompt.system,
                    messages=messages,
                )
        except TimeoutError:
            raise ModelCallFailed("timeout") from None
        except SDK_ERRORS as exc:
            raise ModelCallFailed(failure_reason(exc)) from None
        text = "".join(block.text for block in response.content if block.type == "text")
        usage = response.usage
        cached = usage.cache_read_input_tokens or 0
        return Completion(
            text=text,
            # Anthropic counts cache reads and writes apart from input_tokens; the
            # prompt's size is their sum, as OpenAI's prompt_tokens is.
            input_tokens=usage.input_tokens + cached + (usage.cache_creation_input_tokens or 0),
            output_tokens=usage.output_tokens,
            cached_input_tokens=cached,
        )
