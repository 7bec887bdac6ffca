# Two commands after cloning: `make demo` and `make test`. Each bootstraps .venv.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the newest Python 3.11+ on PATH
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)

# local training (`provider: local`, the `local` extra) is installed unless LOCAL=0. torch
# goes in first, pinned: on these machines `pip install torch==2.13.0` takes the CPU build
# from local disk, while an unpinned torch would download a CUDA build of several GB.
LOCAL ?= 1
TORCH := 2.13.0
COMMA := ,
EXTRAS := $(if $(filter 0,$(LOCAL)),dev$(COMMA)postgres,dev$(COMMA)postgres$(COMMA)local)

.PHONY: demo test unit lint typecheck schema clean venv bench soak

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "error: reconciler needs Python 3.11 or newer on PATH" >&2; exit 1; fi
	@echo "==> creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
	@if [ "$(LOCAL)" != 0 ]; then \
		echo "==> installing torch $(TORCH) first, pinned (log: $(VENV)/install.log)"; \
		$(PY) -m pip install --disable-pip-version-check 'torch==$(TORCH)' > $(VENV)/install.log 2>&1 \
			|| { cat $(VENV)/install.log; echo "error: pip install torch failed (see above; LOCAL=0 skips local training)" >&2; exit 1; }; \
	fi
	@echo "==> installing reconciler and its test tools$(if $(filter 0,$(LOCAL)),, with local training)"
	@$(PY) -m pip install --disable-pip-version-check -e '.[$(EXTRAS)]' >> $(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; echo "error: pip install failed (see above)" >&2; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	@$(PY) examples/demo.py

unit: $(STAMP)
	@$(PY) -m pytest -q -m "not slow and not process"

# two workers, a test file each at a time (its module fixtures stay in one process): the
# end-to-end suites mostly wait on processes, so two run in the time of one
WORKERS ?= 2

test: $(STAMP)
	@$(PY) -m pytest -q -n $(WORKERS) --dist loadfile

bench: $(STAMP)
	@$(PY) bench/run.py

# the long form of the crash, fault and fuzz suites, with their figures
soak: $(STAMP)
	@RECONCILER_SOAK=1 $(PY) -m pytest -q -s tests/test_soak.py tests/test_e2e_faults.py tests/test_fuzz_cli.py \
		tests/test_e2e_replicas.py

lint: $(STAMP)
	@$(VENV)/bin/ruff check reconciler tests
	@$(VENV)/bin/ruff format --check reconciler tests

typecheck: $(STAMP)
	@$(VENV)/bin/mypy

schema: $(STAMP)
	@$(PY) -m reconciler.schema > schema/finetunejob-v1.json
	@echo "wrote schema/finetunejob-v1.json"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
