# Two commands for everyone: `make course` runs every lesson, `make test` runs the whole test suite.
# Both set up on first use: a .venv with the pinned stack, then the ONNX Runtime C++ headers.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: course test lab setup headers release clean

course: setup
	$(PY) -m course run

test: setup
	$(PY) -m pytest

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

setup: $(STAMP) headers

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test,grading]"
	touch $(STAMP)

headers: $(STAMP)
	$(PY) -m course setup-ort

release: setup
	$(PY) -m course release --out release

clean:
	rm -rf build release .cache
