# Quick start: `make run` and `make test` both work on a fresh machine.
# Everything installs into .venv from the package registries, with versions pinned in constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint bench demo clean

$(STAMP): pyproject.toml constraints.txt $(wildcard scripts/system-deps/*.sh)
	for f in scripts/system-deps/*.sh; do if [ -f "$$f" ]; then bash "$$f" || exit 1; fi; done
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,screen,spark]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/leukos demo

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/bench_assess.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
