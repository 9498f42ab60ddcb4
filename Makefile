# The two set-up commands: `make demo` and `make test`. Both create .venv
# and install what they need; torch==2.13.0 is pinned here so that a CPU
# machine does not pull a multi-GB CUDA build. On a GPU host, install the
# CUDA build of torch into .venv first and `make` keeps it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[agent,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rigdeck demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
