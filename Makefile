# Doppel: `make demo` and `make test` set up what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.doppel-installed
TORCH_PIN := torch==2.13.0
DEMO_OUT ?= demo_out
# Test processes (pytest-xdist, a test file per process): 2 took the suite from 1000 s to 550 s on the 2-core VM.
TEST_WORKERS ?= 2

.PHONY: setup test lint pytest demo demo-quick bench clean

setup: $(STAMP)

# The stamp is rebuilt when the dependency list changes; a second `make setup` does nothing.
$(STAMP): pyproject.toml scripts/ensure_node_tools.sh
	@bash scripts/ensure_libusb.sh
	@bash scripts/ensure_chromium.sh
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 (e.g. pyenv install 3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	# torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]'
	@bash scripts/ensure_node_tools.sh $(VENV)/node-tools
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

pytest: setup
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

test: lint pytest

demo: setup
	$(VENV)/bin/doppel demo --out $(DEMO_OUT)

demo-quick: setup
	$(VENV)/bin/doppel demo --quick --out $(DEMO_OUT)

bench: setup
	@for b in benchmarks/*.py; do \
		if grep -q '^# make bench: needs inputs' $$b; then echo "== $$b: needs inputs (its docstring); not run"; continue; fi; \
		echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
