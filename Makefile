# Two commands a newcomer needs: `make run` and `make test`. Each builds its own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench demo setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

## run: set up and run the daemon on the embedded default (SQLite in var/, mail as .eml files in var/mail/)
run: $(STAMP)
	$(BIN)/shortage-watch db upgrade
	@# First run only: hand the daemon a sample inbox dated relative to today, so mail appears in
	@# var/mail/ within a minute and tells a true story (deadlines ahead, one report, one late case).
	@# Back-dated so the inbox's settle time (files still being uploaded) does not hold them back.
	@if [ ! -e var/.sample-inbox ]; then $(BIN)/shortage-watch sample-inbox var/inbox >/dev/null \
		&& touch -d '1 minute ago' var/inbox/*.* && touch var/.sample-inbox; fi
	@echo "shortage-watch: running; mail is written to var/mail/; Ctrl-C stops"
	@echo "  distributor portal: http://127.0.0.1:8080/   (API docs: http://127.0.0.1:8080/docs)"
	@echo "  first account, in another terminal: .venv/bin/shortage-watch accounts add-distributor D350901"
	@echo "  (prints a one-time password; D350901 is a distributor of the sample directory)"
	$(BIN)/shortage-watch run

## demo: play the scripted National Day 2024 scenario on a throwaway database (mail in var/demo-mail/)
demo: $(STAMP)
	$(BIN)/shortage-watch demo

## test: set up and pass the tests (SQLite and PostgreSQL); what CI runs
test: $(STAMP)
	$(BIN)/python -m pytest -q

## test-fast: the edit-test loop (under a minute): every test not marked slow, on SQLite only, one worker per core
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n auto

## bench: every benchmark in bench/, each printing its figure and ratio
bench: $(STAMP)
	@# Every benchmark runs even when one misses its aim; the exit code says whether any did.
	@failed=""; for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; done; \
		if [ -n "$$failed" ]; then echo "missed their aim:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) var .pytest_cache
