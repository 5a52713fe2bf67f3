# Two commands do all set-up on a fresh machine (only Python 3.10+ needed):
#   make demo   - create .venv, install, build the tiny model and data, run a short ZPPO run on the CPU
#   make test   - same set-up, then ruff (make lint) and the whole test suite (unit + CPU end-to-end), on two pytest-xdist
#                 workers (a tiny run leaves about a third of the 2 cores idle while its Ray processes start)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TINY_DIR ?= .cache/tiny
DEMO_DIR ?= outputs/demo
# torch and torchvision are installed first and explicitly: on x86_64 this pair is the one whose torchvision
# loads beside torch on a CPU (vision processors need torchvision); pip must not pick another torch for verl.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup tiny demo lint test test-unit clean

$(VENV)/.installed: setup.py REQUIRED_VERL.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_PIN)
	$(PY) -m pip install -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# All five artefacts (data_prep/tiny): the students, the data sets and the teacher (about a minute of its own; each is
# rebuilt only when its parameters or sources change).
tiny: setup
	$(PY) -m data_prep.tiny --out $(TINY_DIR) --teacher-responses 2

# Extra Hydra overrides: make demo ARGS="trainer.total_training_steps=6". Rerunning resumes from the last checkpoint.
ARGS ?=
demo: tiny
	ZPPO_TINY_DIR=$(TINY_DIR) $(PY) -m recipe.zppo.main_zppo preset=cpu trainer.default_local_dir=$(DEMO_DIR) \
		trainer.save_freq=1 zppo.console=steps $(ARGS)
	@echo "Demo finished. Checkpoints: $(DEMO_DIR)/global_step_*  Metrics (JSON lines): $(DEMO_DIR)/metrics/"

# ruff: line length 120 as verl, rules in pyproject.toml.
lint: setup
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest tests -n 2 --dist worksteal --durations=25

test-unit: setup
	$(PY) -m pytest tests -m "not e2e" -n 2 --dist worksteal

clean:
	rm -rf $(VENV) .cache outputs
