# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PORTAL_HOME ?= $(CURDIR)/var

.PHONY: setup run test bench lint clean demo-data

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo-data: setup
	$(BIN)/portal datasets build
	$(BIN)/portal demo seed

run: demo-data
	$(BIN)/python -m portal.devserver

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
