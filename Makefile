PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test reproduce lint bench clean docs wheel-check

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml linrank/_version.py
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# sdist and wheel by `python -m build`; the wheel installed into a new virtual environment runs
# linrank check, reproduce --quick and the examples' --quick modes (.ci/wheel-check)
wheel-check: $(STAMP)
	bash .ci/wheel-check

reproduce: $(STAMP)
	$(VENV)/bin/linrank reproduce --out results/

docs: $(STAMP)
	$(PY) -m sphinx -b html -E -W --keep-going docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check linrank tests examples benchmarks

clean:
	rm -rf $(VENV) results docs/_build
