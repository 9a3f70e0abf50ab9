# Everything goes through the project venv; targets are idempotent.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench-ingest bench-stage bench-process eopf-env clean

$(STAMP): requirements.txt requirements-dev.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps spyndex==0.12.0
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/rspy-batch demo

test: $(STAMP)
	$(BIN)/ruff check rspy_batch tasks tests bench
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check rspy_batch tasks tests bench

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-stage: $(STAMP)
	$(BIN)/python bench/stage.py

bench-process: $(STAMP)
	$(BIN)/python bench/process.py

# The separate EOPF CPM venv (built on first use anyway; this builds it ahead).
eopf-env: $(STAMP)
	$(BIN)/python -c "from rspy_batch.processing.eopf_env import ensure_eopf_env; print(ensure_eopf_env())"

clean:
	rm -rf $(VENV) demo .pytest_cache
