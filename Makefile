# Set-up is part of every target: a fresh clone needs only `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# torch 2.13.0 is a CPU build on the machines we develop on; set TORCH=torch (or a CUDA pin) to choose another.
TORCH ?= torch==2.13.0
MODELS ?= $(or $(HARDNEG_MODELS),$(HOME)/.cache/hardneg-models)
OFFLINE_MODELS ?= ../shared/tools/offline-models
BIN := $(VENV)/bin

.PHONY: setup models demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# Local copies of all-MiniLM-L6-v2 (and all-mpnet-base-v2) for machines without hub access.
models: setup
	@if [ -f "$(MODELS)/all-MiniLM-L6-v2/model.safetensors" ]; then echo "models in $(MODELS)"; \
	elif [ -x "$(OFFLINE_MODELS)" ]; then PYTHON=$(BIN)/python $(OFFLINE_MODELS) "$(MODELS)" minilm; \
	else echo "No local models in $(MODELS): the demo uses hub ids (set HARDNEG_MODELS to a folder of local models)"; fi

# The main job: the experiment's quick mode on the shipped SciFact slice (every negative strategy, one re-ranker
# each, metrics with paired tests, results.md and charts in runs/experiment-quick/).
demo: models
	HARDNEG_MODELS="$(MODELS)" $(BIN)/haystack-hardneg experiment examples/experiment_quick.yml

test: setup
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) runs .pytest_cache
