"""The model catalog: public model names, where each is served, what it costs.

One TOML file, read by the gateway (which models exist, their limits) and the
generator (how to reach them). `${VAR}` in a base_url is taken from the
environment, so one file serves every deployment. A catalog that cannot be
right refuses to load, with a message naming the line at fault.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEFAULT_CATALOG",
    "Catalog",
    "CatalogError",
    "ModelEntry",
    "SemanticCacheConfig",
    "load_catalog",
]

DEFAULT_CATALOG = Path(__file__).with_name("default_catalog.toml")

# "local": run inside the embedder service (the bundled all-MiniLM-L6-v2); embeddings only.
Provider = Literal["openai", "anthropic", "openai-compatible", "local"]

_DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CatalogError(ValueError):
    """The catalog is wrong; the message names the file and line."""


class SemanticCacheConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Cosine similarity a stored question must reach to answer a new one.
    threshold: float = Field(default=0.97, gt=0, le=1)
    ttl_s: float = Field(default=600, gt=0, le=86_400)
    # The catalog's embedding model that embeds the questions (default: the first one).
    embedding_model: str | None = None
    # A request at any other temperature always goes to the model.
    temperature: float = Field(default=0, ge=0, le=2)


class ModelEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    provider: Provider
    upstream_model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    price_input_per_mtok: float = Field(default=0.0, ge=0)
    price_output_per_mtok: float = Field(default=0.0, ge=0)
    context_window: int = Field(default=8192, ge=256)
    max_output_tokens: int = Field(default=4096, ge=1)
    fallbacks: tuple[str, ...] = ()
    role: Literal["chat", "utility", "embedding"] = "chat"
    deadline_s: float | None = Field(default=None, gt=0)
    # Exact-response cache for temperature-0 requests: off unless a model sets a TTL.
    cache_ttl_s: float | None = Field(default=None, gt=0, le=86_400)
    # A reasoning model (o-series, DeepSeek-R1, Qwen3 ...) thinks before it answers: it
    # takes max_completion_tokens, not max_tokens, and needs room (and no newline stop)
    # to get past its thinking.
    reasoning: bool = False
    # Whether the model takes function tools; a request with tools for one that does
    # not is refused (400 unsupported_parameter), never answered as if they were absent.
    tools: bool = True
    # Whether the model sees images (`image_url` parts); off unless the entry says so,
    # because a text-only model would answer as if the image were not there.
    vision: bool = False
    # An embedding model: the size of its vectors, and whether it can shorten them
    # (`dimensions` in a request: OpenAI's text-embedding-3 models can).
    dimensions: int | None = Field(default=None, ge=1, le=65_536)
    shortens: bool = False
    # Semantic cache (off unless set): answers to single-question temperature-0
    # requests, found again by the meaning of the question (services/generator/semantic).
    semantic_cache: SemanticCacheConfig | None = None

    @model_validator(mode="after")
    def _openai_compatible_needs_a_url(self) -> ModelEntry:
        if self.provider == "openai-compatible" and not self.base_url:
            raise ValueError("an openai-compatible model needs a base_url")
        return self

    @model_validator(mode="after")
    def _roles_fit_providers(self) -> ModelEntry:
        if self.provider == "local" and self.role != "embedding":
            raise ValueError("provider 'local' serves embedding models only")
        if self.role == "embedding" and self.provider == "anthropic":
            raise ValueError("anthropic serves no embedding models")
        if self.role == "embedding" and self.dimensions is None:
            raise ValueError("an embedding model needs its dimensions")
        if self.role == "embedding" and self.semantic_cache is not None:
            raise ValueError("semantic_cache belongs on a chat model")
        return self

    def resolved_base_url(self, env: Mapping[str, str]) -> str:
        url = self.base_url or _DEFAULT_BASE_URLS[self.provider]

        def lookup(found: re.Match[str]) -> str:
            name = found.group(1)
            if name not in env:
                raise CatalogError(f"model '{self.name}': base_url needs ${{{name}}}, not set")
            return env[name]

        return _VAR.sub(lookup, url)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.price_input_per_mtok + output_tokens * self.price_output_per_mtok
        ) / 1_000_000


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    models: dict[str, ModelEntry]

    def get(self, name: str) -> ModelEntry | None:
        return self.models.get(name)

    def chat_models(self) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.role == "chat"]

    def embedding_models(self) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.role == "embedding"]

    def semantic_embedder(self, entry: ModelEntry) -> ModelEntry | None:
        """The embedding model of `entry`'s semantic cache (None: it has none)."""
        if entry.semantic_cache is None:
            return None
        name = entry.semantic_cache.embedding_model
        if name is not None:
            return self.get(name)
        return next(iter(self.embedding_models()), None)

    def utility_model(self) -> ModelEntry | None:
        return next((m for m in self.models.values() if m.role == "utility"), None)

    def check_keys(self, env: Mapping[str, str]) -> None:
        """Every key a model needs is set (run where the keys are used: the generator)."""
        for model in self.models.values():
            if model.api_key_env and not env.get(model.api_key_env):
                raise CatalogError(
                    f"model '{model.name}' needs its key in ${model.api_key_env}, which is not set"
                )


def _line_of(text: str, name: str, key: str | None = None) -> int:
    """The line of `key` in the [models.<name>] table (of the table itself if absent)."""
    header = re.compile(rf'^\s*\[\s*models\.(?:"{re.escape(name)}"|{re.escape(name)})\s*\]')
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines, 1) if header.match(line)), 1)
    if key is not None:
        for number in range(start + 1, len(lines) + 1):
            line = lines[number - 1]
            if line.lstrip().startswith("["):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", line):
                return number
    return start


def parse_catalog(text: str, source: str = "catalog") -> Catalog:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: {exc}") from None
    tables = raw.get("models")
    if not isinstance(tables, dict) or not tables:
        raise CatalogError(f"{source}:1: no [models.<name>] tables")
    models: dict[str, ModelEntry] = {}
    for name, table in tables.items():
        where = f"{source}:{_line_of(text, name)}"
        if not isinstance(table, dict):
            raise CatalogError(f"{where}: models.{name} must be a table")
        try:
            models[name] = ModelEntry(name=name, **table)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or name
            key = str(first["loc"][0]) if first["loc"] else None
            where = f"{source}:{_line_of(text, name, key)}"
            raise CatalogError(f"{where}: model '{name}': {field}: {first['msg']}") from None
    for entry in models.values():
        where = f"{source}:{_line_of(text, entry.name)}"
        where = f"{source}:{_line_of(text, entry.name, 'fallbacks')}"
        for fallback in entry.fallbacks:
            if fallback not in models:
                raise CatalogError(f"{where}: model '{entry.name}': unknown fallback '{fallback}'")
        cycle = _cycle_from(entry.name, models)
        if cycle:
            raise CatalogError(f"{where}: fallback cycle {' -> '.join(cycle)}")
        if entry.semantic_cache is not None:
            _check_semantic_cache(entry, models, f"{source}:{_line_of(text, entry.name)}")
    return Catalog(models=models)


def _check_semantic_cache(entry: ModelEntry, models: dict[str, ModelEntry], where: str) -> None:
    assert entry.semantic_cache is not None
    name = entry.semantic_cache.embedding_model
    embedders = [m for m in models.values() if m.role == "embedding"]
    chosen = models.get(name) if name is not None else next(iter(embedders), None)
    if chosen is None or chosen.role != "embedding":
        wanted = f"'{name}'" if name else "one"
        raise CatalogError(
            f"{where}: model '{entry.name}': semantic_cache needs an embedding model ({wanted})"
        )


def _cycle_from(start: str, models: dict[str, ModelEntry]) -> list[str] | None:
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        path.append(name)
        for nxt in models[name].fallbacks:
            if (found := visit(nxt)) is not None:
                return found
        path.pop()
        return None

    return visit(start)


def load_catalog(path: Path | None = None) -> Catalog:
    chosen = path or DEFAULT_CATALOG
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{chosen}: cannot read the catalog ({exc.strerror})") from None
    return parse_catalog(text, str(chosen))


def environment() -> Mapping[str, str]:
    """The process environment, for resolving base URLs and keys (read here only)."""
    return os.environ
