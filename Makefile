# The two commands a newcomer needs: `make lab` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP := $(PY) -m pip install -q -c constraints.txt
PORT ?= 8888
# Extra `jupyter lab` options, e.g. LAB_ARGS="--no-browser --IdentityProvider.token=secret".
LAB_ARGS ?=
# Jupyter refuses to start as root (containers, fresh cloud machines) without --allow-root.
LAB_ROOT_ARGS = $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test test-fast bench setup clean browser-deps warm-numba

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install_torch.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	bash scripts/install_torch.sh $(PY)
	$(PIP) -e ".[dev,ray]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) scripts/warm_numba.py
	touch $(STAMP)

## Compile UMAP's numba code into its on-disk cache (done by setup; rerun after an upgrade of umap-learn).
warm-numba: $(STAMP)
	$(PY) scripts/warm_numba.py

## Set up, then open the quickstart notebook in JupyterLab (PORT=8888, LAB_ARGS=... for more options).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --port=$(PORT) $(LAB_ROOT_ARGS) $(LAB_ARGS) notebooks/01_quickstart.ipynb

# The `test` extra (SAELens) only for the tests: a classroom laptop running `make lab` does not need it.
$(TEST_STAMP): $(STAMP)
	$(PIP) -e ".[test]"
	touch $(TEST_STAMP)

## Set up, then run every test (unit, integration, notebooks, browser).
test: $(TEST_STAMP) browser-deps
	$(PY) -m pytest -q tests

## Unit tests only (no slow, no browser).
test-fast: $(TEST_STAMP)
	$(PY) -m pytest -q -m "not slow and not browser" tests

bench: $(STAMP)
	$(PY) -m workbench bench

## Debian's chromium for the browser test (never a downloaded browser).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser test needs Debian's chromium: sudo apt-get install chromium"; fi; }

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
