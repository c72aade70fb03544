# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  := models/default
CONFIG := training/configs/default.yaml
CORPUS := datasets/corpus
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install model serve test lint bench clean system-deps

$(STAMP): pyproject.toml model/kinds/_ngrams.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The default bundle is rebuilt when the corpus, the taxonomy or the config change.
$(MODEL)/manifest.json: $(STAMP) $(wildcard $(CORPUS)/*.jsonl) datasets/taxonomy.yaml $(CONFIG)
	$(BIN)/podskazka train --data $(CORPUS) --out $(MODEL) --config $(CONFIG) --force

model: $(MODEL)/manifest.json

serve: model
	$(BIN)/podskazka serve --model $(MODEL) --host $(HOST) --port $(PORT)

# system packages the suite drives for real (a browser, a database server); idempotent
system-deps:
	bash .ci/system-deps.sh

# style and types first (about 80 s on a clean clone, seconds once mypy has its cache), then the suite
test: lint system-deps
	$(BIN)/python -m pytest -q

# style and types: ruff's lint (docstrings on the public API included) and format check, mypy --strict
# on model/ and serve/, and on training/ with unannotated functions allowed (config in pyproject.toml)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: model
	$(BIN)/python bench/predict.py --model $(MODEL)

clean:
	rm -rf $(VENV) $(MODEL) .pytest_cache
