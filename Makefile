# The two commands a newcomer needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PY_SOURCES := app tests bench migrations

.PHONY: run test lint migrate schema fuzz bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python 3.11 or newer is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m app serve

migrate: $(STAMP)
	$(BIN)/python -m app migrate

test: lint
	$(BIN)/python -m pytest

# What the code claims, checked: lint rules, one formatting, and the types of app/.
lint: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/python -m app export-schema > schema.graphql

# A longer campaign than make test runs: more examples for schemathesis and the property tests.
fuzz: $(STAMP)
	CONFORMANCE_MAX_EXAMPLES=$${CONFORMANCE_MAX_EXAMPLES:-200} PROPERTY_MAX_EXAMPLES=$${PROPERTY_MAX_EXAMPLES:-20000} \
		$(BIN)/python -m pytest tests/conformance tests/test_properties.py

# The performance benchmark against PostgreSQL (bench/README.md): about 13 minutes; BENCH_QUICK=1 for a
# short run. It empties the database BENCH_DATABASE_URL (default: postgres@127.0.0.1:5432/bench).
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
