# The two commands: `make run` (start gnothi on the bundled model) and `make test` (all tests).
VENV ?= .venv
ARGS ?=

.PHONY: run test setup bench
run:
	@bash scripts/setup.sh run
	$(VENV)/bin/gnothi demo $(ARGS)

test:
	@bash scripts/setup.sh test
	$(VENV)/bin/python -m pytest tests $(ARGS)

setup:
	@bash scripts/setup.sh test

bench:
	@bash scripts/setup.sh run
	$(VENV)/bin/python benchmarks/bench_model.py
