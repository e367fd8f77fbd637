# The README's two commands: `make report` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: setup test test-fast lint report check baseline bench clean reproduce

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

report: $(STAMP)
	$(VENV)/bin/snakemake
	@echo "report: $(abspath report/index.html) and $(abspath report/report.pdf)"

# The regression check against baselines/default/ (exit 1 on a regression), then the report with its verdict.
check: $(STAMP)
	$(VENV)/bin/snakemake
	$(VENV)/bin/sweepbench check --baseline default; status=$$?; $(VENV)/bin/sweepbench report >/dev/null; exit $$status

# Make baselines/default/ (commit it): the default config's studies with BASELINE_SEEDS instead of
# their own seeds (more seeds, none shared with a normal run), in results-baseline/.
BASELINE_SEEDS ?= 10-19
baseline: $(STAMP)
	$(VENV)/bin/snakemake results-baseline/tables/runs.csv --config results_dir=results-baseline seeds=$(BASELINE_SEEDS)
	$(VENV)/bin/sweepbench baseline save default --tables results-baseline/tables
	$(VENV)/bin/sweepbench check --baseline default --tables results-baseline/tables --out results-baseline/check \
	  --history results/history.csv --no-fail  # the new baseline's own figures: an entry in the check history

# Seed 002's core on real Fashion-MNIST: the LR sweep over decades and the batch sweep B = 16 ... 8192,
# one seed, with the seed-vs-sweepbench tables and verdicts in report/reproduce/. Needs the data offline
# (`apt-get install dataset-fashion-mnist`, or the four .gz files in data/FashionMNIST/raw/).
REPRODUCE_STUDIES ?= [lenet_lr_sweep,lenet_batch_sweep]
reproduce: $(STAMP)
	$(VENV)/bin/snakemake --configfile config/studies/seed002_lenet5_fmnist.yaml \
	  --config 'run=$(REPRODUCE_STUDIES)' results_dir=results/reproduce report_dir=report/reproduce
	@echo "report: $(abspath report/reproduce/index.html) (section 'Seed vs sweepbench' in each study)"

# The full suite (what CI runs), after the lint.
test: lint
	$(PY) -m pytest -q

# The inner loop: the unit tests not marked slow (no CLI subprocesses, PDF, browser or Snakefile runs).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf results/plan.json results/runs results/manifests results/specs results/tables results/check results/logs report/index.html report/report.pdf report/figures .snakemake results-baseline
