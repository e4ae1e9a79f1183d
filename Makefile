PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## make run: install into .venv and start a single node under ./grange-data/
run: $(STAMP)
	$(BIN)/grange quickstart --dir ./grange-data

## make test: install test extras into .venv and run the whole suite
test: $(STAMP)
	$(BIN)/ruff check grange tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check grange tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/rpc_bench.py

clean:
	rm -rf $(VENV) grange-data
