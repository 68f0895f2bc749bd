"""Log probabilities from the real local model, read by the official openai SDK.

llama.cpp's server sends them in OpenAI's streamed shape (plus a token `id`,
which tokenbus drops); it sends none for `top_logprobs: 0`, so the generator asks
it for one alternative and the client still gets OpenAI's empty lists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionTokenLogprob

from tests.e2e.test_jobs import ENDED, submit, wait_for_job
from tests.support import Stack

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture
async def sdk(stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with stack.openai() as client:
        yield client


def assert_ranked(tokens: list[ChatCompletionTokenLogprob], top: int) -> None:
    assert tokens
    for token in tokens:
        assert token.logprob <= 0
        assert len(token.top_logprobs) == top
        assert all(alternative.logprob <= 0 for alternative in token.top_logprobs)


async def streamed(
    sdk: AsyncOpenAI, **fields: object
) -> tuple[str, list[ChatCompletionTokenLogprob]]:
    stream = await sdk.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=16,
        temperature=0,
        stream=True,
        **fields,  # type: ignore[arg-type]
    )
    text = ""
    tokens: list[ChatCompletionTokenLogprob] = []
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None:
                # On the chunk whose text they describe: never ahead of it.
                assert choice.delta.content
                tokens += choice.logprobs.content or []
    return text, tokens


async def test_a_streamed_answer_carries_each_tokens_logprob_and_two_alternatives(
    sdk: AsyncOpenAI,
) -> None:
    text, tokens = await streamed(sdk, logprobs=True, top_logprobs=2)
    assert text
    assert "".join(t.token for t in tokens) == text
    assert_ranked(tokens, 2)


async def test_a_whole_answer_carries_every_tokens_logprob_in_order(sdk: AsyncOpenAI) -> None:
    answer = await sdk.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=16,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    choice = answer.choices[0]
    assert choice.logprobs is not None
    tokens = choice.logprobs.content or []
    assert choice.message.content
    assert "".join(t.token for t in tokens) == choice.message.content
    assert_ranked(tokens, 2)
    # The same request streamed gives the same tokens (temperature 0, one slot's sampler).
    _, streamed_tokens = await streamed(sdk, logprobs=True, top_logprobs=2)
    assert [t.token for t in streamed_tokens] == [t.token for t in tokens]


async def test_top_logprobs_zero_gives_every_token_and_no_alternatives(sdk: AsyncOpenAI) -> None:
    text, tokens = await streamed(sdk, logprobs=True, top_logprobs=0)
    assert "".join(t.token for t in tokens) == text
    assert_ranked(tokens, 0)


async def test_without_logprobs_the_answer_has_none(sdk: AsyncOpenAI) -> None:
    text, tokens = await streamed(sdk)
    assert text
    assert tokens == []
    answer = await sdk.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=4,
        logprobs=False,
    )
    assert answer.choices[0].logprobs is None


async def test_a_jobs_result_carries_the_logprobs_it_asked_for(stack: Stack) -> None:
    body = {"model": MODEL, "messages": ASK, "max_tokens": 8, "logprobs": True, "top_logprobs": 1}
    accepted = await submit(stack, body)
    job = await wait_for_job(stack, accepted["id"], lambda j: j["status"] in ENDED)
    assert job["status"] == "completed", job
    result = ChatCompletion.model_validate(job["result"])
    logprobs = result.choices[0].logprobs
    assert logprobs is not None
    tokens = logprobs.content or []
    assert "".join(t.token for t in tokens) == result.choices[0].message.content
    assert_ranked(tokens, 1)
