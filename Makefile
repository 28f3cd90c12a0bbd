# The two commands of the README: `make demo` (the main job on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build from this machine's wheel cache; install it first so transformers never pulls a CUDA torch.
TORCH ?= torch==2.13.0

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: install
	$(VENV)/bin/eagle-widgets engine-demo --out demo-output

lint: install
	$(PY) -m ruff check eagle_widgets tests benchmarks

test: install lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: install
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
