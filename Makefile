# Each target does its own set-up, so `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: test demo lint bench clean

# The venv is rebuilt when pyproject.toml changes (new dependency, new extra).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[postgres,mysql,dev]'
	touch $@

test: $(VENV)/.installed
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[postgres,mysql,dev,bench]'
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_daemon.py
	$(BIN)/python bench/bench_export.py
	$(BIN)/python bench/bench_changes.py
	$(BIN)/python bench/bench_split.py

clean:
	rm -rf $(VENV) var build src/*.egg-info
