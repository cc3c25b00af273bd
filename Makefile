# Set-up is part of every target: a fresh clone needs only `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# torch 2.13.0 is a CPU build on the machines we develop on (pip finds the +cpu wheel locally). Where pip would
# take it from PyPI (a CUDA build on Linux), add TORCH_INDEX=https://download.pytorch.org/whl/cpu; set
# TORCH=torch (or a CUDA pin) to choose another build. `make clean` first to reinstall.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
MODELS ?= $(or $(HARDNEG_MODELS),$(HOME)/.cache/hardneg-models)
OFFLINE_MODELS ?= ../shared/tools/offline-models
BIN := $(VENV)/bin
# A real OpenAI-compatible embedding server for the tests of API members: Infinity, in a virtual environment of its
# own (its pins, sentence-transformers < 4 and transformers 4, clash with ours). The tests find it through
# HARDNEG_INFINITY.
INFINITY_VENV ?= .venv-infinity
INFINITY ?= infinity-emb[server,torch]==0.0.78
# Keep large freed blocks in glibc's heap: a training step frees and re-allocates attention tensors of about 150 MB,
# above glibc's largest mmap threshold (32 MB), so by default each is mapped afresh and its pages faulted in and
# zeroed by the kernel again; on 2 cores that made CPU training steps about 1.5x slower. Other allocators and
# systems ignore these settings.
export MALLOC_MMAP_THRESHOLD_ ?= 4294967296
export MALLOC_TRIM_THRESHOLD_ ?= 68719476736
export MALLOC_TOP_PAD_ ?= 1073741824

.PHONY: setup models demo test lint wheel-check docs clean infinity

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# A local all-MiniLM-L6-v2 for the demo and the example configs, saved from the Hugging Face hub (or, where the hub
# cannot be reached, built by an OFFLINE_MODELS tool when one is installed at that path).
models: setup
	@if [ -f "$(MODELS)/all-MiniLM-L6-v2/model.safetensors" ]; then echo "models in $(MODELS)"; \
	elif [ -x "$(OFFLINE_MODELS)" ]; then PYTHON=$(BIN)/python $(OFFLINE_MODELS) "$(MODELS)" minilm; \
	else echo "Saving all-MiniLM-L6-v2 from the Hugging Face hub into $(MODELS)"; \
	  $(BIN)/python -c "import sys; from sentence_transformers import SentenceTransformer; \
	    SentenceTransformer('sentence-transformers/all-MiniLM-L6-v2').save(sys.argv[1])" "$(MODELS)/all-MiniLM-L6-v2"; fi

# The main job: the experiment's quick mode on the SciFact slice shipped in the package (every negative strategy,
# one re-ranker each, metrics with paired tests, results.md and charts in runs/demo/).
demo: models
	HARDNEG_MODELS="$(MODELS)" $(BIN)/haystack-hardneg demo

# Tests run in parallel, one torch thread per worker (pytest-xdist): most of a test's time is single-threaded
# Python (imports, fresh processes, servers starting), so two workers on two cores finish in about half the time.
test: setup infinity
	OMP_NUM_THREADS=1 HARDNEG_INFINITY="$(INFINITY_VENV)/bin/infinity_emb" $(BIN)/python -m pytest -q -n auto \
		--maxprocesses 4 tests

infinity: $(INFINITY_VENV)/.installed

$(INFINITY_VENV)/.installed:
	$(PYTHON) -m venv $(INFINITY_VENV)
	$(INFINITY_VENV)/bin/python -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(INFINITY_VENV)/bin/python -m pip install -q "$(INFINITY)" "$(TORCH)"
	touch $@

# Lint and import order (the rules and why: pyproject.toml, [tool.ruff]); the layering is a test (tests/test_layers.py).
lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

# The documentation site (docs/, mkdocs.yml) into build/site; warnings are errors.
docs: setup
	$(BIN)/mkdocs build --strict --quiet

# The wheel, installed core only into clean venvs (the pip `python3 -m venv` brings, and a current one).
wheel-check: setup
	TORCH="$(TORCH)" TORCH_INDEX="$(TORCH_INDEX)" scripts/wheel_check.sh $(BIN)/python

clean:
	rm -rf $(VENV) $(INFINITY_VENV) runs build .pytest_cache
