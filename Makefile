# lit_reg — `make help` lists the targets. Each target sets up .venv itself on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help demo study-demo test test-fast lint mutation mutation-sample bench bench-bitmoji bench-fashion-mnist figures docs notebooks tensorboard clean-logs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.runtime

$(VENV)/.study: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[study]'
	touch $@ $(VENV)/.runtime

$(VENV)/.bench: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[bench]'
	touch $@ $(VENV)/.runtime

$(VENV)/.notebooks: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[notebooks]'
	touch $@ $(VENV)/.runtime

$(VENV)/.docs: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[docs]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime ## train the toy-regression early-stopping demo (no download needed)
	$(BIN)/lit-reg fit --config configs/toy_regression.yaml --trainer.enable_progress_bar false

study-demo: $(VENV)/.study ## weight-decay study on the toy regression: 3 variants x 3 seeds, report (about 1 min)
	$(BIN)/lit-reg study configs/studies/toy_weight_decay.yaml --new

test: $(VENV)/.dev ## run the whole test suite, slow tests included (what CI runs)
	$(BIN)/python -m pytest

test-fast: $(VENV)/.dev ## run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow"

lint: $(VENV)/.dev ## ruff over the code
	$(BIN)/ruff check .

# mutmut in an environment of its own: it brings `rich`, and with `rich` importable Lightning changes its default
# progress bar. That environment sees .venv's packages and the checkout (for the tests' subprocesses) through a .pth.
MUTATION_VENV := .venv-mutation
$(MUTATION_VENV)/.mutmut: $(VENV)/.dev
	$(PYTHON) -m venv $(MUTATION_VENV)
	{ echo "$(CURDIR)"; $(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"; } \
		> "$$($(MUTATION_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/lit_reg.pth"
	$(MUTATION_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'mutmut>=3.8,<4'
	touch $@

mutation: $(MUTATION_VENV)/.mutmut ## mutation testing of the core modules (mutmut, many hours on 2 cores; not in CI): mutants/report.md
	$(if $(MUTATION_BUDGET_S),LIT_REG_MUTATION_BUDGET_S=$(MUTATION_BUDGET_S)) $(MUTATION_VENV)/bin/mutmut run --max-children 2 $(MUTANTS)
	$(MUTATION_VENV)/bin/python tools/mutation_report.py --out mutants/report.md

# a seeded 10 % of each module's mutants, each against its fastest tests up to 30 s: an estimate of the whole score
MUTATION_SAMPLE ?= 0.1
MUTATION_SAMPLE_BUDGET_S ?= 30
mutation-sample: $(MUTATION_VENV)/.mutmut ## mutation score of a random sample of the mutants, with its interval (about an hour): mutants/sample-report.md
	mkdir -p mutants && $(MUTATION_VENV)/bin/python tools/mutation_sample.py --fraction $(MUTATION_SAMPLE) > mutants/sample.txt
	LIT_REG_MUTATION_BUDGET_S=$(MUTATION_SAMPLE_BUDGET_S) $(MUTATION_VENV)/bin/mutmut run --max-children 2 $$(cat mutants/sample.txt)
	$(MUTATION_VENV)/bin/python tools/mutation_report.py --sample mutants/sample.txt --out mutants/sample-report.md

bench: $(VENV)/.runtime ## throughput (lit_reg fit vs hand loop, lecture pipeline, bare Lightning) and each regularizer's step cost (minutes)
	$(BIN)/python bench/throughput.py --json bench/throughput.json
	$(BIN)/python bench/regularizer_cost.py --json bench/regularizer_cost.json

bench-bitmoji: $(VENV)/.runtime ## train both Bitmoji configs over seeds 0 1 2, print the val-accuracy table
	$(BIN)/python bench/bitmoji.py

bench-fashion-mnist: $(VENV)/.bench ## real FashionMNIST: the lectures' nets, ours, its ablations, scikit-learn; seeds 0 1 2 (hours)
	$(BIN)/python bench/fashion_mnist.py --json bench/fashion_mnist.json

figures: $(VENV)/.runtime ## redraw the pictures of docs/figures.md into docs/images/ (about 20 s)
	$(BIN)/python docs/make_figures.py

docs: $(VENV)/.docs ## build the documentation site into site/ (mkdocs --strict: a broken link or reference fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

notebooks: $(VENV)/.notebooks ## execute notebooks/ in full into logs/notebooks/*.ipynb (LIT_REG_FAST=1 quick, NOTEBOOKS=... some)
	$(BIN)/python tools/run_notebooks.py $(NOTEBOOKS)

tensorboard: $(VENV)/.runtime ## open TensorBoard on logs/
	$(BIN)/tensorboard --logdir logs

clean-logs: ## delete every run under logs/ (keeps logs/.gitkeep)
	find logs -mindepth 1 ! -name .gitkeep -delete
