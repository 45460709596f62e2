# Volna: `make demo` runs a real wave against the bundled simulators, `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo bench load clean redis-check

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,load]'
	touch $(STAMP)

venv: $(STAMP)

redis-check:
	@command -v redis-server >/dev/null 2>&1 || [ -n "$$REDIS_URL" ] || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "redis-server not found: installing it with apt-get"; \
	    (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || { echo "apt-get install redis-server failed"; exit 1; }; \
	  else \
	    echo "redis-server is needed by the tests: install it (e.g. 'sudo apt-get install redis-server') or set REDIS_URL"; exit 1; \
	  fi; }

lint: $(STAMP)
	$(BIN)/ruff check engine connectors simulators tests load
	$(BIN)/mypy

test: $(STAMP) redis-check lint
	$(BIN)/pytest -q

demo: $(STAMP) redis-check
	$(BIN)/volna demo

bench: $(STAMP) redis-check
	$(BIN)/python load/bench_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
