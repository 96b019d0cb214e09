# myosight: the two set-up commands of the README, and a few conveniences.
#   make demo   install everything into .venv and run the main job on a synthetic session
#   make test   install everything into .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch is installed first, pinned, so that the project's torch range installs nothing
# larger. Override TORCH with another pip requirement for another build (for example a CUDA one).
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output

.PHONY: demo test install lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	rm -rf $(DEMO_DIR)
	$(BIN)/myosight synth --out $(DEMO_DIR)/sessions --subjects S04 --actions-per-class 1 --seconds 10.5,14
	$(BIN)/myosight info $(DEMO_DIR)/sessions/*.hdf5
	$(BIN)/myosight subactions $(DEMO_DIR)/sessions/*.hdf5 --csv $(DEMO_DIR)/split.csv
	$(BIN)/myosight emg spectrograms $(DEMO_DIR)/sessions/*.hdf5 --sample 4 --out $(DEMO_DIR)/emg_spectrograms.png
	$(BIN)/myosight bench emg --repeat 50
	@echo "demo output in $(DEMO_DIR)/"

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/myosight weights fetch
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed
	$(BIN)/myosight bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
