# One command to set up and run the quickstart, one command to test (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# a package index for torch alone, e.g. https://download.pytorch.org/whl/cpu (CPU-only wheel)
TORCH_INDEX ?=

.PHONY: setup run test

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install -q torch==2.13.0 --index-url $(TORCH_INDEX))

# the quickstart's needs only (no casadi, no test tools)
$(STAMP): pyproject.toml requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(DEV_STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/ocdl solve quickstart --solver emsa-ternary --epochs 30

test: $(DEV_STAMP)
	$(PY) -m pytest
