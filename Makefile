# Two entry points for a newcomer (see README):
#   make demo   create .venv if missing, install everything, run jobs/demo.yaml on a local Ray
#   make test   the same installation, then the whole test suite
# Both are idempotent: the installation re-runs only when pyproject.toml changes.

VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH ?= torch==2.13.0

.PHONY: install demo test bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)   # CPU build first: no CUDA download
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pipeline run jobs/demo.yaml

test: $(STAMP)
	$(VENV)/bin/pytest -q
