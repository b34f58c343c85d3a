# Two commands on a fresh machine:
#   make demo   set up .venv (if missing), install kgpu, cluster a built-in data set
#   make test   set up .venv with the test extra, run the whole test suite
# and, on a machine with an NVIDIA GPU, `make gpu-check` (see below).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch==2.13.0 is the CPU build this workplace keeps on local disk; on other
# machines pip fetches it from PyPI.
TORCH ?= torch==2.13.0

.PHONY: demo test bench notebook gpu-check clean

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

# One pytest worker per core: most of the suite's time is single-threaded
# (subprocesses, the first compilation of each numba kernel into its cache).
test: $(VENV)/.kgpu-test-installed
	$(PY) -m pytest -q -n auto

bench: $(VENV)/.kgpu-test-installed
	$(PY) bench/compare.py

# Re-run the benchmark notebook at full size and store it with its outputs.
notebook: $(VENV)/.kgpu-test-installed
	$(PY) notebooks/execute.py --size full

# The GPU run: tests, cases A and B, KMedians, MiniBatchKMeans, k-means++,
# peers and rooflines, in under 8 minutes on one H100/H200; writes
# bench/results/gpu-<date>-<device>.md. Uses .venv when there is one, else
# $(PYTHON) (a GPU image's own Python, with torch or cupy). Without a GPU it
# says so and fails at once.
GPU_PYTHON ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))

gpu-check:
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_PYTHON) bench/gpu_check.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
