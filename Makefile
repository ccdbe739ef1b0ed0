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

demo: $(PY)
	$(PY) -m pip install -q -e ".[demo]"
	$(VENV)/bin/edgeclust demo

# Lint and format are checked before the tests, so CI fails fast on style (ruff settings: pyproject.toml).
test: system-deps $(PY)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest
	KERAS_BACKEND=jax $(PY) -m pytest tests/cluster -m "not tensorflow_only"

lint: $(PY)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
