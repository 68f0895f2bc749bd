"""`tokenbus` command: `tokenbus up` runs the whole system locally; `tokenbus keys` manages keys."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvloop

from services.cli.chat import add_chat_command, options_from_args, run_chat
from services.cli.keys import add_keys_commands, run_keys
from services.cli.up import UpOptions, run_up

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenbus", description="tokenbus LLM chat backend")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="run nats-server, the local model and every service",
        description="Run the whole stack locally; Ctrl-C stops it. Port 0 picks a free port.",
    )
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")
    up.add_argument("--state-dir", type=Path, default=Path(".tokenbus"))
    up.add_argument("--nats-port", type=int, default=4222)
    up.add_argument("--model-port", type=int, default=8081)
    up.add_argument(
        "--upstream-url",
        help="base URL of a model API to use instead of the embedded model "
        "(OpenAI-compatible unless --upstream-provider says otherwise)",
    )
    up.add_argument(
        "--upstream-provider",
        choices=["openai-compatible", "anthropic"],
        default="openai-compatible",
        help="with --upstream-url: the API it speaks; for anthropic, the URL is the "
        "Messages API's base, without /v1 (default openai-compatible)",
    )
    up.add_argument("--model", help="with --upstream-url: the public model name to serve")
    up.add_argument("--catalog", type=Path, help="model catalog (TOML) instead of the default")
    up.add_argument(
        "--generators", type=int, default=1, help="generator replicas (competing consumers)"
    )
    add_keys_commands(commands)
    add_chat_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        options = UpOptions(
            host=args.host,
            port=args.port,
            state_dir=args.state_dir,
            nats_port=args.nats_port,
            model_port=args.model_port,
            upstream_url=args.upstream_url,
            upstream_provider=args.upstream_provider,
            model=args.model,
            catalog=args.catalog,
            generators=max(1, args.generators),
        )
        return uvloop.run(run_up(options))
    if args.command == "keys":
        return uvloop.run(run_keys(args))
    if args.command == "chat":
        return run_chat(options_from_args(args))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
