# The two commands: `make run` (start the gnothi chat on the bundled model) and `make test` (all tests).
VENV ?= .venv
ARGS ?=
TESTS ?= tests

# ARGS passes options through, e.g. make run ARGS="--port 8000", make test ARGS="-m 'not browser'";
# TESTS picks what to run, e.g. make test TESTS=tests/unit (default: everything).
.PHONY: run test setup bench
run:
	@bash scripts/setup.sh run
	$(VENV)/bin/gnothi serve $(ARGS)

# Tests keep their own cache (converted model, stores, SAEs, detectors) inside the checkout,
# so a test run never depends on files made by hand elsewhere. Override with GNOTHI_TEST_CACHE.
GNOTHI_TEST_CACHE ?= $(CURDIR)/.gnothi-cache

test:
	@bash scripts/setup.sh test
	GNOTHI_CACHE_DIR="$(GNOTHI_TEST_CACHE)" $(VENV)/bin/python -m pytest $(TESTS) $(ARGS)

setup:
	@bash scripts/setup.sh test

bench:
	@bash scripts/setup.sh run
	$(VENV)/bin/python benchmarks/bench_model.py
