"""The OpenAI Agents SDK, unmodified, runs an agent with a function tool on the gateway.

The SDK speaks the Responses API (`OpenAIResponsesModel`): it sends the question,
gets a function call, runs the tool, sends the call and its output back, and
reads the final answer, all through `/v1/responses` to the real local model.
"""

from __future__ import annotations

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    ToolCallItem,
    ToolCallOutputItem,
    function_tool,
    set_tracing_disabled,
)

from tests.support import Stack

pytestmark = pytest.mark.e2e


async def test_an_agent_calls_its_tool_and_reaches_a_final_answer(stack: Stack) -> None:
    set_tracing_disabled(True)  # the SDK would otherwise send its traces to OpenAI
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"Sunny and 18 C in {city}"

    async with stack.openai() as client:
        agent = Agent(
            name="weather",
            instructions="Answer with the weather tool.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model="smollm2-135m", openai_client=client),
            # The first turn must call the tool; the SDK then lets the model answer.
            model_settings=ModelSettings(temperature=0, tool_choice="required"),
        )
        result = await Runner.run(agent, "What is the weather in Paris?", max_turns=4)
    assert asked, "the tool was never run"
    kinds = [type(item) for item in result.new_items]
    assert ToolCallItem in kinds
    assert ToolCallOutputItem in kinds
    assert isinstance(result.final_output, str)
    assert result.final_output.strip()
