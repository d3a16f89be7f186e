# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# pytest runs on one worker per core (pytest-xdist); PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

.PHONY: demo test test-fast test-integrations lint typecheck venv clean chaos

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/retrainer demo --dir demo-project $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples chaos
	$(BIN)/ruff format --check src tests benchmarks examples chaos
	$(BIN)/mypy
	$(PYTEST)

# Airflow, Prefect and MLflow pin many packages: their tests run in a venv each (.venv-airflow,
# .venv-prefect, .venv-mlflow), built once by .ci/integration.sh; .ci/run runs this after make test
test-integrations: $(STAMP)
	bash .ci/integration.sh all

# for contributors: the same minus the end-to-end tests marked slow (make test and CI run them)
test-fast: lint typecheck
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples chaos
	$(BIN)/ruff format --check src tests benchmarks examples chaos

typecheck: $(STAMP)
	$(BIN)/mypy

# The chaos campaign (docs/reliability.md): random kills, faults and races on the real CLI and
# daemon, the store's invariants checked after each step. Bounded by CHAOS_MINUTES (and
# CHAOS_ITERATIONS if set); CHAOS_SEED repeats a campaign; CHAOS_BACKEND=postgresql needs
# RETRAINER_TEST_PG_URL (and CHAOS_PG_CTL/CHAOS_PG_DATA to restart the server mid-run).
CHAOS_MINUTES    ?= 3
CHAOS_ITERATIONS ?= 0
CHAOS_BACKEND    ?= sqlite
CHAOS_SEED       ?=
CHAOS_OUT        ?= chaos-report.json

chaos: $(STAMP)
	$(BIN)/python -m chaos --minutes $(CHAOS_MINUTES) --iterations $(CHAOS_ITERATIONS) \
		--backend $(CHAOS_BACKEND) --out $(CHAOS_OUT) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

clean:
	rm -rf $(VENV) .venv-airflow .venv-prefect .venv-mlflow demo-project .pytest_cache .mypy_cache .ruff_cache chaos-report*.json
