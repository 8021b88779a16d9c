# tinyml-labkit: two commands on a fresh machine with Python 3.11:
#   make report   -> creates .venv if missing, installs, runs the quick report on offline data
#                    (only notebooks whose inputs changed; FORCE=1 runs all; 2 at a time, JOBS=1 one)
#   make test     -> same bootstrap, runs the test suite
#   make lab      -> JupyterLab (pinned in the same environment) on notebooks/
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.labkit-installed
PROFILE ?= quick
ONLY   ?=
FORCE  ?=
JOBS   ?=
PYTEST_ARGS ?=

export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONUNBUFFERED := 1

.PHONY: setup report report-smoke report-full test lab check-pages bench strip clean-reports

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	@echo "setting up $(VENV) with the pinned stack (a few minutes, once)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -r requirements.txt
	@$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python -m labkit.cli warmup > $(VENV)/warmup.log 2>&1 || { cat $(VENV)/warmup.log; exit 1; }
	@touch $(STAMP)

report: $(STAMP)
	@$(BIN)/labkit report --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),) $(if $(FORCE),--force,) $(if $(JOBS),--jobs $(JOBS),)

report-smoke:
	$(MAKE) report PROFILE=smoke

report-full:
	$(MAKE) report PROFILE=full

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# JupyterLab from the pinned environment; kernels talk over local sockets (ipc), not TCP.
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks --KernelManager.transport=ipc $(if $(filter 0,$(shell id -u)),--allow-root,)

# open every page of reports/ in Chromium (Playwright) and list what is broken
check-pages: $(STAMP)
	@$(BIN)/labkit check-pages reports --screenshots reports/screenshots

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

strip: $(STAMP)
	$(BIN)/nbstripout --keep-id notebooks/*.ipynb

clean-reports:
	find reports -mindepth 1 ! -name README.md -exec rm -rf {} +
