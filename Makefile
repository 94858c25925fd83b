# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test test-slow lint docs conformance fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	exec $(BIN)/hotfolder run

# Two processes (pytest-xdist): the tests wait on daemons and encoders, so two halve the wall time on
# 2 cores. The slow tests (faults, load, memory ceilings) stay one at a time: they measure the machine.
test: $(STAMP_TEST)
	$(BIN)/python -m pytest -n 2

test-slow: $(STAMP_TEST)
	# pytest exits 5 when the marker selects nothing: that is not a failure.
	$(BIN)/python -m pytest -m slow || [ $$? -eq 5 ]

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# The documentation site (mkdocs-material), built into build/site; `.venv/bin/mkdocs serve` to browse it.
docs: $(STAMP_TEST)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

conformance: $(STAMP_TEST)
	$(BIN)/python tests/conformance.py

# A longer fuzz campaign than the one in test-slow: FUZZ_BATCHES x 24 mutated inputs, new seed each run.
fuzz: $(STAMP_TEST)
	FUZZ_SEED=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d " ")} FUZZ_BATCHES=$${FUZZ_BATCHES:-200} \
		$(BIN)/python -m pytest -m slow -s --timeout=0 tests/test_fuzz.py

# Benchmarks (not part of `make test`): eight parts of ratios measured in one run, about 11 minutes.
# ImageMagick is compared when installed (as root: apt-get install -y imagemagick).
bench: $(STAMP_TEST)
	$(BIN)/python tests/bench/bench.py
