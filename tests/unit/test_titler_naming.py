"""Choosing a title, with a scripted model at the TitleModel seam: retry, then fallback."""

from __future__ import annotations

from services.titler.naming import TitleChoice, choose_title
from services.titler.ports import Completion, ModelCallFailed, Prompt

MESSAGE = "How do I **reverse** a list in Python?"


class ScriptedModel:
    """Answers from a script; an exception in the script is raised instead."""

    name = "utility"
    provider_model = "tiny-1"

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.prompts: list[Prompt] = []

    async def complete(self, prompt: Prompt) -> Completion:
        self.prompts.append(prompt)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Completion(text=answer, input_tokens=100 + len(self.prompts), output_tokens=7)


class Meter:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    async def __call__(self, seq: int, completion: Completion) -> None:
        self.calls.append((seq, completion.input_tokens, completion.output_tokens))


async def test_a_valid_first_answer_is_the_title_after_one_metered_call() -> None:
    model, meter = ScriptedModel('"Reversing lists in Python"'), Meter()
    choice = await choose_title(MESSAGE, model, meter)
    assert choice == TitleChoice("Reversing lists in Python", "model")
    assert meter.calls == [(1, 101, 7)]
    assert model.prompts[0].messages[-1].content.startswith("Message: How do I")


async def test_a_rejected_answer_is_retried_once_with_the_reason_as_feedback() -> None:
    bad = "# Python lists\nReversing them is easy"
    model, meter = ScriptedModel(bad, "Reversing lists in Python"), Meter()
    choice = await choose_title(MESSAGE, model, meter)
    assert choice == TitleChoice("Reversing lists in Python", "model")
    assert meter.calls == [(1, 101, 7), (2, 102, 7)]
    retry = model.prompts[1].messages
    assert retry[:-2] == model.prompts[0].messages
    assert retry[-2].role == "assistant"
    assert retry[-2].content == bad
    assert retry[-1].role == "user"
    assert "single line" in retry[-1].content
    assert retry[-1].content.endswith("Title:")


async def test_two_rejected_answers_fall_back_to_the_first_words_and_both_are_metered() -> None:
    model, meter = ScriptedModel("Sure! Here is a title", "x" * 200), Meter()
    choice = await choose_title(MESSAGE, model, meter)
    assert choice == TitleChoice("How do I reverse a list in Python?", "fallback")
    assert [seq for seq, _, _ in meter.calls] == [1, 2]
    assert "introduction" in model.prompts[1].messages[-1].content


async def test_an_empty_answer_is_fed_back_as_a_non_empty_turn() -> None:
    model = ScriptedModel("", "Python lists")
    assert await choose_title(MESSAGE, model, Meter()) == TitleChoice("Python lists", "model")
    assert model.prompts[1].messages[-2].content == "(empty)"


async def test_a_provider_failure_falls_back_at_once_without_metering() -> None:
    model, meter = ScriptedModel(ModelCallFailed("timeout"), "never asked"), Meter()
    choice = await choose_title(MESSAGE, model, meter)
    assert choice == TitleChoice("How do I reverse a list in Python?", "fallback")
    assert len(model.prompts) == 1
    assert meter.calls == []


async def test_a_provider_failure_on_the_retry_keeps_the_first_call_metered() -> None:
    model, meter = ScriptedModel("Sea\nlife", ModelCallFailed("status_500")), Meter()
    choice = await choose_title("tell me about the sea", model, meter)
    assert choice == TitleChoice("Tell me about the sea", "fallback")
    assert [seq for seq, _, _ in meter.calls] == [1]


async def test_without_a_utility_model_the_title_is_the_fallback() -> None:
    meter = Meter()
    assert await choose_title("hi", None, meter) == TitleChoice("Hi", "fallback")
    assert meter.calls == []
