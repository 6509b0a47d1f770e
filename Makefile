# One task runner. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test unit integration lint typecheck format broker-up broker-down bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)            ## the main job: a live demo on a local broker
	HF_HUB_OFFLINE=1 $(VENV)/bin/driftrec demo

test: $(STAMP)            ## lint, then unit + integration tests on the real broker
	$(VENV)/bin/ruff check .
	$(PY) -m deploy.local_kafka up
	HF_HUB_OFFLINE=1 $(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest -m "not integration"

integration: $(STAMP)
	$(PY) -m deploy.local_kafka up
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m integration

lint: $(STAMP)
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

broker-up: $(STAMP)
	$(PY) -m deploy.local_kafka up

broker-down: $(STAMP)
	$(PY) -m deploy.local_kafka down

bench: $(STAMP)           ## replay benchmark on MovieLens (DATASET=path/to/ml-latest-small)
	HF_HUB_OFFLINE=1 $(VENV)/bin/driftrec replay --movielens $(DATASET)

clean:
	rm -rf .driftrec .pytest_cache .ruff_cache .mypy_cache
