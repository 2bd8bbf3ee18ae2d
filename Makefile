# getok: two commands do the whole set-up on a fresh machine.
#   make test  — create .venv, install torch 2.14.1 + torchvision 0.29.1, then getok[all,test]; run the suite
#   make demo  — the same set-up, then the main job on the embedded defaults (report under runs/demo)
#   make test-engines — a second venv (.venv-engines: transformers < 5, EasyR1's CPU requirements) and the
#                       contract tests that drive our configs / data / model dirs / reward through EasyR1's code
#   make test-verl    — a third venv (.venv-verl: verl 0.9.1 without its GPU dependencies) and the contract tests
#                       that drive our stage-2 configs / rows / agent loop / reward through verl's own code
#   make test-deepspeed — a fourth venv (.venv-ds: getok's locked dependencies + deepspeed 0.19.8, no compiled ops)
#                         and the ZeRO-2 / ZeRO-3 test on two CPU ranks (tests/train/test_multiprocess.py -k deepspeed)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.getok-installed
LOCK   := requirements/lock.txt
PYTEST_ARGS ?=
# the engine contract environment (tests/engines): separate from .venv, EasyR1 needs transformers < 5
ENGINES_PYTHON ?= python3.11
ENGINES_VENV   ?= .venv-engines
ENGINES_BIN    := $(ENGINES_VENV)/bin
ENGINES_STAMP  := $(ENGINES_VENV)/.getok-engines-installed
ENGINES_REQ    := requirements/engines.txt
ENGINES_LOCK   := requirements/engines-lock.txt
# the verl contract environment (tests/engines_verl): its own venv, since EasyR1's snapshot is also a package `verl`
VERL_PYTHON ?= python3.11
VERL_VENV   ?= .venv-verl
VERL_BIN    := $(VERL_VENV)/bin
VERL_STAMP  := $(VERL_VENV)/.getok-verl-installed
VERL_REQ    := requirements/verl.txt
VERL_LOCK   := requirements/verl-lock.txt
# the DeepSpeed environment (ZeRO on two CPU ranks): .venv plus deepspeed, kept out of .venv (not a getok dependency)
DS_PYTHON ?= python3.11
DS_VENV   ?= .venv-ds
DS_BIN    := $(DS_VENV)/bin
DS_STAMP  := $(DS_VENV)/.getok-ds-installed
DS_REQ    := requirements/deepspeed.txt
DS_LOCK   := requirements/deepspeed-lock.txt

.PHONY: install test test-all test-engines install-engines test-verl install-verl test-deepspeed install-deepspeed demo lint \
	bench clean lock lock-engines lock-verl lock-deepspeed

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

$(ENGINES_STAMP): setup.cfg pyproject.toml $(ENGINES_REQ) $(ENGINES_LOCK)
	test -x $(ENGINES_BIN)/python || $(ENGINES_PYTHON) -m venv $(ENGINES_VENV)
	$(ENGINES_BIN)/pip install --quiet --upgrade pip
	# the same torch pair as .venv first; nothing installed later may replace it
	$(ENGINES_BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(ENGINES_BIN)/pip install --quiet -c $(ENGINES_LOCK) -r $(ENGINES_REQ)
	$(ENGINES_BIN)/pip install --quiet --no-deps -e .
	touch $(ENGINES_STAMP)

install-engines: $(ENGINES_STAMP)

# EasyR1 contract tests (tests/engines) in .venv-engines; the artefacts are built by getok in .venv. The tests
# skip, saying why, where ../shared/third_party/EasyR1 (or $$GETOK_EASYR1) is absent.
test-engines: $(STAMP) $(ENGINES_STAMP)
	$(ENGINES_BIN)/python -m pytest -q -p no:cacheprovider tests/engines $(PYTEST_ARGS)

$(VERL_STAMP): setup.cfg pyproject.toml $(VERL_REQ) $(VERL_LOCK)
	test -x $(VERL_BIN)/python || $(VERL_PYTHON) -m venv $(VERL_VENV)
	$(VERL_BIN)/pip install --quiet --upgrade pip
	# the same torch pair as .venv first; the lock pins it, so nothing installed later can replace it
	$(VERL_BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(VERL_BIN)/pip install --quiet -c $(VERL_LOCK) -r $(VERL_REQ)
	# verl without its install_requires (wandb, tensorboard, ray[default], peft, torchdata) and GPU extras
	$(VERL_BIN)/pip install --quiet --no-deps -c $(VERL_LOCK) verl
	$(VERL_BIN)/pip install --quiet --no-deps -e .
	$(VERL_BIN)/python -c "import torch, verl; assert torch.__version__.split('+')[0] == '2.14.1', torch.__version__"
	touch $(VERL_STAMP)

install-verl: $(VERL_STAMP)

# verl contract tests (tests/engines_verl) in .venv-verl; the artefacts are built by getok in .venv.
test-verl: $(STAMP) $(VERL_STAMP)
	$(VERL_BIN)/python -m pytest -q -p no:cacheprovider tests/engines_verl $(PYTEST_ARGS)

$(DS_STAMP): setup.cfg pyproject.toml $(LOCK) $(DS_REQ) $(DS_LOCK)
	test -x $(DS_BIN)/python || $(DS_PYTHON) -m venv $(DS_VENV)
	$(DS_BIN)/pip install --quiet --upgrade pip
	# the same torch pair as .venv first; lock.txt pins it, so nothing installed later can replace it
	$(DS_BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	# getok as in .venv (lock.txt) plus deepspeed and what only it needs (deepspeed-lock.txt); DeepSpeed ships an
	# sdist: DS_BUILD_OPS=0 builds it without compiling any op (the CPU accelerator needs none for ZeRO-2 / 3)
	DS_BUILD_OPS=0 $(DS_BIN)/pip install --quiet -c $(LOCK) -c $(DS_LOCK) -e ".[all,test]" -r $(DS_REQ)
	$(DS_BIN)/python -c "import torch, deepspeed; assert torch.__version__.split('+')[0] == '2.14.1', torch.__version__"
	touch $(DS_STAMP)

install-deepspeed: $(DS_STAMP)

# ZeRO-2 / ZeRO-3 on two CPU ranks (gloo) against one process, in .venv-ds; GETOK_REQUIRE_DEEPSPEED=1 makes the
# test fail, not skip, where deepspeed does not import.
test-deepspeed: $(DS_STAMP)
	GETOK_REQUIRE_DEEPSPEED=1 $(DS_BIN)/python -m pytest -q -p no:cacheprovider tests/train/test_multiprocess.py tests/train/test_scaleout_configs.py \
		-k deepspeed $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/getok demo --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check getok getok_lab tests benchmarks

# Rewrite the lock from the current venv after a deliberate upgrade (then rerun the demo, commit both).
lock: $(STAMP)
	{ sed -n '1,3p' $(LOCK); $(BIN)/pip freeze --exclude-editable | grep -v '^#'; } > $(LOCK).new && mv $(LOCK).new $(LOCK)

lock-engines: $(ENGINES_STAMP)
	{ sed -n '1,3p' $(ENGINES_LOCK); $(ENGINES_BIN)/pip freeze --exclude-editable | grep -v '^#'; } > $(ENGINES_LOCK).new && mv $(ENGINES_LOCK).new $(ENGINES_LOCK)

lock-verl: $(VERL_STAMP)
	{ sed -n '1,3p' $(VERL_LOCK); $(VERL_BIN)/pip freeze --exclude-editable | grep -v '^#'; } > $(VERL_LOCK).new && mv $(VERL_LOCK).new $(VERL_LOCK)

# deepspeed-lock.txt holds only what lock.txt does not (deepspeed and the packages only it needs)
lock-deepspeed: $(DS_STAMP)
	{ sed -n '1,3p' $(DS_LOCK); $(DS_BIN)/pip freeze --exclude-editable | grep -v '^#' \
		| awk -F'==' 'NR == FNR { if ($$0 !~ /^#/) in_lock[tolower($$1)] = 1; next } !(tolower($$1) in in_lock)' $(LOCK) -; \
	} > $(DS_LOCK).new && mv $(DS_LOCK).new $(DS_LOCK)

clean:
	rm -rf $(VENV) $(ENGINES_VENV) $(VERL_VENV) $(DS_VENV) runs build *.egg-info
