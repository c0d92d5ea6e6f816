# boltzkit developer commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch, installed before the package so pip never pulls a CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: setup demo test test-all lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,tune,postgres,quality]"

demo: setup
	$(BIN)/boltzkit train --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: setup
	$(BIN)/ruff check src tests benchmarks

MNIST ?= ../shared/data/mnist.npz

# The quick benchmarks (a few minutes); docs/RESULTS.md lists the long ones and their commands.
bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/rbm_speed.py --mnist $(MNIST)
	$(BIN)/python benchmarks/ais_speed.py --mnist $(MNIST)

clean:
	rm -rf $(VENV) runs .pytest_cache
