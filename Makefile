# getok: two commands do the whole set-up on a fresh machine.
#   make test  — create .venv, install torch 2.14.1 + torchvision 0.29.1, then getok[all,test]; run the suite
#   make demo  — the same set-up, then the main job on the embedded defaults (report under runs/demo)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.getok-installed
LOCK   := requirements/lock.txt
PYTEST_ARGS ?=

.PHONY: install test test-all demo lint bench clean lock

$(STAMP): setup.cfg pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU-capable pair that makes torchvision, transformers' processors and
	# segment-anything work; nothing installed later may replace it.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	# everything else at the locked versions (setup.cfg's ranges stay loose for users' own environments)
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[all,test]"
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

# Rewrite the lock from the current venv after a deliberate upgrade (then rerun the demo, commit both).
lock: $(STAMP)
	{ sed -n '1,3p' $(LOCK); $(BIN)/pip freeze --exclude-editable | grep -v '^#'; } > $(LOCK).new && mv $(LOCK).new $(LOCK)

clean:
	rm -rf $(VENV) runs build *.egg-info
