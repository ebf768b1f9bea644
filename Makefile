# Every target works from a fresh clone: `make test` builds the venv it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv test lint demo

venv: $(VENV)/.installed

# The stamp re-runs the install only when the declared dependencies change.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

test: venv
	$(BIN)/python -m pytest -q

# The Lua scripts need luacheck (Debian: apt-get install lua-check); without it lint fails.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m rfm_dev.lualint

demo: venv
	$(BIN)/rfm-stream demo
