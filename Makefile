# shopseq: `make demo` and `make test` do all set-up from a fresh clone (Python 3.11 only).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := runs/demo

.PHONY: demo test lint bench bench-models clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,text]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shopseq synth --out $(DEMO)/log
	$(BIN)/shopseq prepare $(DEMO)/log --split loo --out $(DEMO)/dataset
	$(BIN)/shopseq evaluate $(DEMO)/dataset --filter-seen --out $(DEMO)/baselines
	$(BIN)/shopseq train $(DEMO)/dataset --config configs/demo.yaml --out $(DEMO)/model
	$(BIN)/shopseq recommend $(DEMO)/model --user u00001 --user u00002 --k 5

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_foundation.py

DATASET ?= beauty
bench-models: $(STAMP)
	$(BIN)/python benchmarks/bench_models.py --dataset $(DATASET) --recbole --speed

clean:
	rm -rf $(VENV) runs bench-results
