# Two commands a newcomer needs: `make run` and `make test`. Each builds its own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

## run: set up and run shortage_watch on the embedded default (SQLite, mail to var/mail/)
run: $(STAMP)
	$(BIN)/shortage-watch db upgrade
	$(BIN)/shortage-watch deadline --received 2024-09-27

## test: set up and pass the tests (SQLite and PostgreSQL)
test: $(STAMP)
	$(BIN)/python -m pytest -q

## bench: every benchmark in bench/, each printing its figure and ratio
bench: $(STAMP)
	@for b in bench/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache
