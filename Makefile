# Two entry points for a newcomer (see README):
#   make demo   create .venv if missing, install everything, run jobs/demo.yaml on a local Ray
#   make test   the same installation, then lint (ruff, import-linter), types (mypy) and the whole test suite
# Both are idempotent: the installation re-runs only when pyproject.toml changes.

VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH ?= torch==2.13.0

.PHONY: install demo test lint bench chromium

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)   # CPU build first: no CUDA download
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pipeline run jobs/demo.yaml

# Lint, types and the import map first: a style, type or layering error fails make test before the
# suite runs (lint-imports: the contracts in pyproject.toml, the map of docs/stages.md).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint chromium
	$(VENV)/bin/pytest -q -m "not isolated"
	$(VENV)/bin/pytest -q -m isolated

# The job report's browser test renders the page in headless Chromium (Debian's package) and checks
# that Chinese text gets real glyphs (fonts-noto-cjk); both are installed here when missing (as root,
# or through sudo). When they cannot be installed those tests are skipped and say why; the rest of
# the suite runs either way.
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

chromium:
	@pkgs=""; test -x /usr/bin/chromium || pkgs="chromium"; test -e $(CJK_FONT) || pkgs="$$pkgs fonts-noto-cjk"; \
	if [ -n "$$pkgs" ]; then \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else sudo=none; fi; \
	  if [ "$$sudo" = none ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "chromium:$$pkgs missing and not installable here (needs apt-get and root or sudo); the browser tests will be skipped"; \
	  else \
	    echo "chromium: installing Debian's$$pkgs"; \
	    { $$sudo apt-get update -qq && \
	      $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; } \
	    || echo "chromium: installation failed; the browser tests will be skipped"; \
	  fi; \
	fi
