# Two commands set everything up on a fresh machine:
#   make run    installs, seeds a demo tenant, runs labelwise (worker on embedded defaults)
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
export HF_HUB_OFFLINE := 1

.PHONY: install run test test-fast lint clean

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
	$(LW) db upgrade
	$(LW) tenant create demo --exist-ok
	$(LW) labels apply examples/support.yaml --tenant demo
	@echo
	@echo "labelwise is starting: worker + HTTP API on http://127.0.0.1:8000 (docs at /docs); Ctrl-C stops it."
	@echo "Admin console: http://127.0.0.1:8000/console (sign in with the demo tenant's token)."
	@echo "In a second terminal, try:"
	@echo "  $(LW) classify \"I was charged twice for my subscription\" --tenant demo --label-set support"
	@echo "(the demo tenant's API token was printed above when it was first created; more: $(LW) token create --tenant demo)"
	@echo
	$(LW) up

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check labelwise tests bench
	$(VENV)/bin/ruff format --check labelwise tests bench

clean:
	rm -rf $(VENV) .labelwise .pytest_cache
