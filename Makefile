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
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,plot,web,pdf,screen,spark,registry]"
	touch $(STAMP)

install: $(STAMP)

# The web service on loopback with the bundled examples; authentication is off (--dev, loopback only).
run: install
	$(BIN)/leukos serve --host 127.0.0.1 --port 8000 --examples examples --dev

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/bench_assess.py
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_service.py
	$(BIN)/python benchmarks/bench_registry.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
