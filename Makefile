# The two commands of the README: `make lab` (JupyterLab on the quickstart, embedded demo model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build from this machine's wheel cache; install it first so transformers never pulls a CUDA torch.
TORCH ?= torch==2.13.0
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
# Jupyter refuses to start as root unless told (containers and CI machines often run as root).
LAB_FLAGS := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: install lab demo test lint browser bench notebooks clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

lab: install
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks/01_quickstart.ipynb

# Headless: explain the demo model's caption of a demo scene, writing a bundle and a figure.
demo: install
	$(VENV)/bin/eagle-widgets demo --out demo-output

# Browser tests drive Debian's Chromium (never a downloaded browser).
browser:
	@test -x $(CHROMIUM) || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null)

lint: install
	$(PY) -m ruff check eagle_widgets tests benchmarks

test: install browser lint
	HF_HUB_OFFLINE=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pytest -q tests notebooks \
		--nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

# Re-execute the notebooks and store clean outputs (no execution counts, no widget state).
notebooks: install
	for nb in notebooks/*.ipynb; do \
		$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; done
	$(PY) scripts/clean_notebooks.py notebooks/*.ipynb

bench: install
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/sessions.py
	$(PY) benchmarks/demo_model.py
	$(PY) benchmarks/faithfulness.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache test-artifacts
