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
QUICKSTART := notebooks/01_quickstart.ipynb
# The server's root is the notebooks folder; default_url makes the address printed with --no-browser (and `/`)
# open the quickstart too, not the Launcher.
LAB_OPEN_ARGS = --ServerApp.root_dir=$(dir $(QUICKSTART)) --LabApp.default_url=/lab/tree/$(notdir $(QUICKSTART))
# Our JupyterLab settings defaults, beside the user's overrides.json (read by every `jupyter lab` of the venv).
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/musicgen-workbench.json
# `make wheelhouse` fills this folder. Once it is complete (its PLATFORM file is written last), set-up installs
# from it alone, with no network, and without the dev and ray extras: a classroom laptop runs `make lab`.
WHEELHOUSE ?= wheelhouse
ifneq ($(wildcard $(WHEELHOUSE)/PLATFORM),)
FROM_WHEELHOUSE := --no-index --find-links $(WHEELHOUSE)
PACKAGE := -e .
else
FROM_WHEELHOUSE :=
PACKAGE := -e ".[dev,ray]"
endif

.PHONY: lab test test-fast bench setup clean browser-deps warm-numba wheelhouse docs

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install_torch.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(FROM_WHEELHOUSE) --upgrade pip
	WHEELHOUSE=$(if $(FROM_WHEELHOUSE),$(WHEELHOUSE)) bash scripts/install_torch.sh $(PY)
	$(PIP) $(FROM_WHEELHOUSE) $(PACKAGE)
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) scripts/warm_numba.py
	touch $(STAMP)

## Compile UMAP's numba code into its on-disk cache (done by setup; rerun after an upgrade of umap-learn).
warm-numba: $(STAMP)
	$(PY) scripts/warm_numba.py

## Set up, then open the quickstart notebook in JupyterLab (PORT=8888, LAB_ARGS=... for more options).
lab: $(STAMP) $(LAB_OVERRIDES)
	$(VENV)/bin/jupyter lab --port=$(PORT) $(LAB_ROOT_ARGS) $(LAB_OPEN_ARGS) $(LAB_ARGS) $(QUICKSTART)

# No "Would you like to get notified about official Jupyter news?" prompt on first open and no update check
# (a classroom may be offline); a user can turn both on in Settings > Notifications.
$(LAB_OVERRIDES): $(STAMP)
	mkdir -p $(@D)
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' > $@

## A folder of wheels from which `make lab` sets up with no network (WHEELHOUSE=wheelhouse; see README).
wheelhouse:
	bash scripts/prepare_offline.sh $(if $(wildcard $(PY)),$(PY),python3) $(WHEELHOUSE)

# The `test` extra (SAELens) only for the tests: a classroom laptop running `make lab` does not need it.
# dev and ray too: a set-up from the wheelhouse has neither.
$(TEST_STAMP): $(STAMP)
	$(PIP) -e ".[dev,ray,test]"
	touch $(TEST_STAMP)

## Set up, then run every test (unit, integration, notebooks, browser), then build the docs with warnings as errors.
test: $(TEST_STAMP) browser-deps
	$(PY) -m pytest -q tests
	$(MAKE) --no-print-directory docs

# The notebooks' executed copies that tests/test_notebooks.py saves; the site renders them with their outputs.
EXECUTED := test-artifacts/notebooks
MISSING_EXECUTED = $(basename $(notdir $(filter-out $(addprefix notebooks/,$(notdir $(wildcard $(EXECUTED)/*.ipynb))),\
	$(wildcard notebooks/*.ipynb))))

## The documentation site in site/ (open site/index.html from disk: no server, no network); strict: a broken
## link or reference fails. Executes the notebooks first (at test size) when their executed copies are missing.
docs: $(TEST_STAMP)
	$(if $(MISSING_EXECUTED),$(PY) -m pytest -q -m slow tests/test_notebooks.py -k "executes and ($(subst $(eval) , or ,$(strip $(MISSING_EXECUTED))))")
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

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
	rm -rf $(VENV) .pytest_cache test-artifacts site
