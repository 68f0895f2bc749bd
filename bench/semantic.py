"""`python -m bench.semantic`: the semantic cache's row of the benchmark.

1. The index alone (services/generator/semantic/index.py, the code the generator
   runs), filled the way the projection fills it, one entry at a time, with
   random unit vectors of all-MiniLM-L6-v2's 384 dimensions: build time, lookup
   p50/p99 of a question near a stored one, resident memory per 10,000 entries.
2. On a real `tokenbus up` (the local models, the cache turned on for
   smollm2-135m): a non-streamed completion answered by the model (an embedding
   and a model call) against one answered from the cache (an embedding and a
   lookup), end to end through the gateway.

The JSON goes to bench/results/<time>-semantic.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import shutil
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.loadgen import API_KEY
from bench.paths import _process, free_port
from contracts import utc_now
from contracts.semantic import SemanticEntry
from services.generator.semantic.index import SemanticIndex
from services.runtime.catalog import DEFAULT_CATALOG

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / ".work"
DIMENSIONS = 384
KEY = ("tenant", "model", "ns", "all-minilm-l6-v2")


def _rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure_index(entries: int, queries: int = 500) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((entries, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    expires = utc_now() + timedelta(hours=1)
    encoded = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
    gc.collect()
    before = _rss_mib()
    index = SemanticIndex()
    started = time.perf_counter()
    for n, vector in enumerate(encoded):
        index.add(
            SemanticEntry(
                correlation_id="bench", tenant_id=KEY[0], model=KEY[1], namespace=KEY[2],
                conversation_id=f"c{n}", turn_id=f"t{n}", embedding_model=KEY[3],
                embedding=vector, answer="An answer of about this length, a sentence or two.",
                finish_reason="stop", provider_model="m", expires_at=expires,
            )
        )  # fmt: skip
    build_s = time.perf_counter() - started
    memory = _rss_mib() - before
    targets = rng.integers(0, entries, queries)
    # Noise of norm ~0.2: a cosine near 0.98 to the stored vector, as a close paraphrase.
    near = vectors[targets] + 0.01 * rng.standard_normal((queries, DIMENSIONS)).astype(np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    now = utc_now()
    times, found = [], 0
    for target, query in zip(targets, near, strict=True):
        t = time.perf_counter()
        hit = index.lookup(KEY, query, now)
        times.append((time.perf_counter() - t) * 1000)
        found += hit is not None and hit.entry.conversation_id == f"c{target}"
    return {
        "entries": entries,
        "build_s": round(build_s, 2),
        "lookup_p50_ms": round(_percentile(times, 50), 3),
        "lookup_p99_ms": round(_percentile(times, 99), 3),
        "rss_mib_per_10k": round(memory / (entries / 10_000), 1),
        "recall_at_1": round(found / queries, 3),
    }


def _catalog(path: Path) -> Path:
    header = '[models."smollm2-135m"]\n'
    path.write_text(
        DEFAULT_CATALOG.read_text().replace(
            header, header + "semantic_cache = { threshold = 0.97, ttl_s = 3600 }\n"
        )
    )
    return path


async def measure_stack(rounds: int) -> dict[str, Any]:
    work = WORK / "semantic"
    # A fresh store: entries an earlier run left (the stream keeps them) would be hits.
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        sys.executable, "-m", "services.cli.main", "up", "--port", str(port), "--nats-port", "0",
        "--model-port", "0", "--state-dir", str(work / "tokenbus"),
        "--catalog", str(_catalog(work / "catalog.toml")),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    model_ms: list[float] = []
    hit_ms: list[float] = []
    with _process(argv, f"{url}/readyz", work / "tokenbus.log", timeout_s=180):
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120
        ) as http:

            async def ask(question: str) -> tuple[float, bool]:
                body = {
                    "model": "smollm2-135m", "temperature": 0, "max_tokens": 32,
                    "messages": [{"role": "user", "content": question}],
                }  # fmt: skip
                t = time.perf_counter()
                response = await http.post("/v1/chat/completions", json=body)
                elapsed = (time.perf_counter() - t) * 1000
                response.raise_for_status()
                return elapsed, response.json().get("system_fingerprint") == "tokenbus-cache"

            await ask("Warm up: say hello.")
            for n in range(rounds):
                question = f"What is the number {n + 17} known for?"
                elapsed, cached = await ask(question)
                assert not cached
                model_ms.append(elapsed)
                await asyncio.sleep(0.3)  # the entry reaches the index through the stream
                # Asked again: the semantic cache's path whole (embedding, lookup, replay).
                elapsed, cached = await ask(question)
                if cached:
                    hit_ms.append(elapsed)
    return {
        "rounds": rounds,
        "model_call_p50_ms": round(statistics.median(model_ms), 1),
        "cache_hit_p50_ms": round(statistics.median(hit_ms), 1) if hit_ms else None,
        "hits": len(hit_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.semantic")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-stack", action="store_true", help="the index only")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "index": [measure_index(int(n)) for n in args.sizes.split(",")],
    }
    if not args.no_stack:
        result["stack"] = asyncio.run(measure_stack(args.rounds))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y%m%dT%H%M%S')}-semantic.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"bench: {out}")


if __name__ == "__main__":
    main()
