# trainlab — `make train` trains the default config, `make test` runs the fast tests.
# The torch requirement is a variable so a CPU-only machine can pin a CPU build:
#   make install TORCH=torch==2.13.0
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch>=2.4
ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.trainlab-installed

.PHONY: install train test test-all sweep ui lint bench bench-sweep clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: install
	$(BIN)/trainlab train $(ARGS)

test: install
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

test-all: install
	$(BIN)/python -m pytest $(ARGS)

sweep: install
	$(BIN)/trainlab train -m optimizer=sgd,adam optimizer.lr=0.01,0.001 $(ARGS)

ui: install
	$(BIN)/trainlab ui $(ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/overhead.py $(ARGS)

# The same sweep with the sequential and the parallel launcher: wall times and their ratio.
bench-sweep: install
	$(BIN)/python benchmarks/sweep_throughput.py $(ARGS)

clean:
	rm -rf outputs/* multirun .pytest_cache .mypy_cache .ruff_cache
