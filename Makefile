# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv if needed.
# `make lint` runs only the style checks of `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
APT_PACKAGES = gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm

.PHONY: demo test lint system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The cross compiler and QEMU (Debian packages); skipped when already installed.
system-deps:
	@if command -v arm-none-eabi-g++ >/dev/null && command -v qemu-system-arm >/dev/null \
	    && [ -f /usr/lib/arm-none-eabi/include/c++/*/vector ] 2>/dev/null; then \
	  echo "system packages: present"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(APT_PACKAGES); \
	fi

demo: system-deps $(PY)
	$(PY) -m pip install -q -e ".[demo]"
	$(VENV)/bin/edgeclust demo

# Lint and format are checked before the tests, so CI fails fast on style (ruff settings: pyproject.toml).
# The clustering tests that run a second time under KERAS_BACKEND=jax (test_layers' 45-case matrix and the
# MNIST fine-tuning stay TensorFlow-only to keep CI within its time; tests/cluster/test_jax.py covers JAX there).
JAX_TESTS = tests/cluster/test_algorithm.py tests/cluster/test_api.py tests/cluster/test_calls.py \
	tests/cluster/test_layer_counts.py tests/cluster/test_unbuilt.py tests/cluster/test_unchanged.py \
	tests/cluster/test_centroids.py tests/cluster/test_batchnorm.py

test: system-deps $(PY)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest
	KERAS_BACKEND=jax $(PY) -m pytest -m "not tensorflow_only" $(JAX_TESTS)

lint: $(PY)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
