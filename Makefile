# Volna: `make demo` runs a real wave against the bundled simulators, `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo bench load chaos clean system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,load]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash ops/system-deps.sh

# Who may import whom: the import-linter contracts in pyproject.toml (README, "The code").
lint: $(STAMP)
	$(BIN)/ruff check engine connectors simulators tests load
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two workers: the suite mostly waits on sockets and subprocesses. VOLNA_NO_SKIP: every peer is
# installed here, so a test that would skip fails instead.
PYTEST_WORKERS ?= 2
test: $(STAMP) system-deps lint
	VOLNA_NO_SKIP=1 $(BIN)/pytest -q -n $(PYTEST_WORKERS) --durations=15

demo: $(STAMP) system-deps
	$(BIN)/volna demo

bench: $(STAMP) system-deps
	bash load/kannel/install.sh
	$(BIN)/python load/bench_all.py

# Against a running `volna api`: LOCUST_HOST=http://127.0.0.1:8080 VOLNA_TOKEN=... make load
LOCUST_HOST ?= http://127.0.0.1:8080
LOAD_TIME ?= 60s
load: $(STAMP)
	$(BIN)/locust -f load/locustfile.py --headless --host $(LOCUST_HOST) -u 50 -r 10 -t $(LOAD_TIME) --only-summary

chaos: $(STAMP) system-deps
	$(BIN)/python load/chaos.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
