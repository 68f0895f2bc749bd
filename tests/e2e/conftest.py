"""Fixtures the end-to-end modules share: the scripted upstream and a stack serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.upstream import FaultyUpstream, running_upstream
from tests.support import Stack, running_stack

SCRIPTED_MODEL = "scripted"
SCRIPTED_ANTHROPIC_MODEL = "scripted-anthropic"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    """Speaks OpenAI's and Anthropic's wire formats; each request takes the next scripted step."""
    with running_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def scripted_stack(
    upstream: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """`tokenbus up` with the scripted upstream as its only model, `scripted`."""
    state = Path(tmp_path_factory.mktemp("scripted"))
    with running_stack(
        state, "--upstream-url", upstream.base_url, "--model", SCRIPTED_MODEL
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def anthropic_stack(
    upstream: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """`tokenbus up` serving the scripted upstream's Messages API as `scripted-anthropic`."""
    state = Path(tmp_path_factory.mktemp("scripted-anthropic"))
    with running_stack(
        state,
        "--upstream-url",
        upstream.base_url.removesuffix("/v1"),  # the Messages API's base
        "--upstream-provider",
        "anthropic",
        "--model",
        SCRIPTED_ANTHROPIC_MODEL,
    ) as stack:
        yield stack
