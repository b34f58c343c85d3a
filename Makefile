# Two commands on a fresh machine:
#   make demo   set up .venv (if missing), install kgpu, cluster a built-in data set
#   make test   set up .venv with the test extra, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch==2.13.0 is the CPU build this workplace keeps on local disk; on other
# machines pip fetches it from PyPI.
TORCH ?= torch==2.13.0

.PHONY: demo test bench notebook clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.kgpu-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.kgpu-test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $(VENV)/.kgpu-installed $@

demo: $(VENV)/.kgpu-installed
	$(PY) -m kgpu demo

test: $(VENV)/.kgpu-test-installed
	$(PY) -m pytest -q

bench: $(VENV)/.kgpu-test-installed
	$(PY) bench/compare.py

# Re-run the benchmark notebook at full size and store it with its outputs.
notebook: $(VENV)/.kgpu-test-installed
	$(PY) notebooks/execute.py --size full

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
