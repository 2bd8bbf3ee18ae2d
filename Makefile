# getok: two commands do the whole set-up on a fresh machine.
#   make test  — create .venv, install torch 2.14.1 + torchvision 0.29.1, then getok[all,test]; run the suite
#   make demo  — the same set-up, then the main job on the embedded defaults (report under runs/demo)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.getok-installed
PYTEST_ARGS ?=

.PHONY: install test test-all demo lint bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU-capable pair that makes torchvision, transformers' processors and
	# segment-anything work; nothing installed later may replace it.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[all,test]" "torch==2.14.1" "torchvision==0.29.1"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "slow or not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/getok demo --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check getok tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
