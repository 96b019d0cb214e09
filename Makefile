# myosight: the two set-up commands of the README, and a few conveniences.
#   make demo   install everything into .venv and run the live demo (replayed synthetic session, no hardware)
#   make test   install everything into .venv, then ruff, mypy, the documentation build and the test suite
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch is installed first, pinned, so that the project's torch range installs nothing
# larger. Override TORCH with another pip requirement for another build (for example a CUDA one).
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output
DEMO_SECONDS ?= 90
# The desktop viewer where there is a display, the live terminal table otherwise.
DEMO_VIEW ?= $(if $(DISPLAY)$(WAYLAND_DISPLAY),,--headless)

.PHONY: demo test install lint typecheck docs bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/myosight weights fetch
	$(BIN)/myosight demo $(DEMO_VIEW) --duration $(DEMO_SECONDS) --jsonl $(DEMO_DIR)/predictions.jsonl

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python tests/typecheck.py
	$(BIN)/mkdocs build --strict --quiet
	$(BIN)/myosight weights fetch
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# mypy on the package as it installs (tests/typecheck.py lays the folders out under their module names).
typecheck: $(BIN)/.installed
	$(BIN)/python tests/typecheck.py

# The documentation site (mkdocs.yml) into build/site; --strict fails on a broken link or a missing page.
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict

bench: $(BIN)/.installed
	$(BIN)/myosight bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
