# vqc: `make demo` and `make test` are all a new machine needs; both install first when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision first: anomalib does not declare them, and the pinned builds come first.
TORCH_PINS := $(shell grep -E '^(torch|torchvision)==' constraints.txt)
PYTEST_ARGS ?=

export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: install demo test test-slow bench bench-quick lint format clean distclean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,slurm,tensorboard,weights]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m vqc.cli.demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS) || test $$? -eq 5  # 5: none selected

# Benchmarks (not part of the tests): write docs/BENCHMARKS.md. BENCH_ARGS="--only inspection"
# runs one; "--device cuda" on a GPU machine. About 80 minutes on 2 cores (quick: about 12).
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff check --fix .

clean:
	rm -rf data/cache outputs wandb .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) data
