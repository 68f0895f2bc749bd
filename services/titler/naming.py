"""Choosing a title: ask the model, validate, ask once more with the reason, else fall back."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contracts import TitleSource
from services.titler.ports import Completion, ModelCallFailed, TitleModel
from services.titler.prompt import first_prompt, retry_prompt
from services.titler.titles import TitleRejected, fallback_title, validate_model_title

__all__ = ["MAX_MODEL_CALLS", "MeterCall", "TitleChoice", "choose_title"]

log = logging.getLogger("tokenbus.titler")

MAX_MODEL_CALLS = 2  # the first ask and one retry with feedback

# Called with the call's number (1, 2) and its completion, before the answer is judged.
MeterCall = Callable[[int, Completion], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TitleChoice:
    title: str
    source: TitleSource


async def choose_title(
    user_message: str, model: TitleModel | None, meter: MeterCall
) -> TitleChoice:
    """Always returns a valid title; the model's when it gives one in two tries."""
    if model is None:
        return TitleChoice(fallback_title(user_message), "fallback")
    prompt = first_prompt(user_message)
    for call in range(1, MAX_MODEL_CALLS + 1):
        try:
            completion = await model.complete(prompt)
        except ModelCallFailed as exc:
            # A second call would likely fail the same way and only delay the title.
            log.warning("utility model failed", extra={"reason": exc.reason, "call": call})
            break
        # Metered whatever the answer is worth: the provider charged for it.
        await meter(call, completion)
        try:
            return TitleChoice(validate_model_title(completion.text), "model")
        except TitleRejected as exc:
            log.info("model title rejected", extra={"reason": exc.reason, "call": call})
            prompt = retry_prompt(prompt, completion.text, exc.reason, user_message)
    return TitleChoice(fallback_title(user_message), "fallback")
