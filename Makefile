# One task runner. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test unit integration lint typecheck format broker-up broker-down replay bench-stages bench-model bench-pipeline bench-framework bench-startup bench-profile clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)            ## the main job: a live demo on a local broker
	HF_HUB_OFFLINE=1 $(VENV)/bin/driftrec demo

test: $(STAMP)            ## lint and type-check, then unit + integration tests on the real broker
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
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

replay: $(STAMP)          ## the offline replay on MovieLens (DATASET=path/to/ml-latest-small)
	HF_HUB_OFFLINE=1 $(VENV)/bin/driftrec replay --movielens $(DATASET)

bench-stages: $(STAMP)    ## encoder and scorer against bare torch (and the int8 ONNX backend against torch CPU)
	HF_HUB_OFFLINE=1 $(PY) -m bench.stage_ceilings --items 10000 100000 1000000

bench-model: $(STAMP)     ## the model thread's work on the throughput backlog (no Kafka) against its bare products
	$(PY) -m bench.model_work

bench-pipeline: $(STAMP)  ## live pipeline throughput against a bare aiokafka loop, then latency at a steady rate
	$(PY) -m deploy.local_kafka up
	HF_HUB_OFFLINE=1 $(PY) -m bench.pipeline throughput
	HF_HUB_OFFLINE=1 $(PY) -m bench.pipeline latency

bench-profile: $(STAMP)   ## the throughput benchmark with a py-spy profile of the worker (25 s once it is ready)
	$(PY) -m deploy.local_kafka up
	HF_HUB_OFFLINE=1 $(PY) -m bench.pipeline throughput --profile 25

bench-startup: $(STAMP)   ## a worker's time to ready, cold and warm (cached vectors), against a process floor
	HF_HUB_OFFLINE=1 $(PY) -m bench.startup --items 10000

bench-framework: $(STAMP) ## Faust's own ceiling on the throughput backlog: parsing only, then per-event plumbing
	$(PY) -m deploy.local_kafka up
	HF_HUB_OFFLINE=1 $(PY) -m bench.pipeline framework

clean:
	rm -rf .driftrec .pytest_cache .ruff_cache .mypy_cache
