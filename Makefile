# lmstream development tasks. `make demo` and `make test` are the whole set-up: both create and reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PKGS := spec reference conformance
export PYRIGHT_PYTHON_CACHE_DIR := $(CURDIR)/$(VENV)/.pyright
# Pyright's wrapper checks npm for a newer release on every run unless told not to.
export PYRIGHT_PYTHON_IGNORE_WARNINGS := 1

.PHONY: install lint format typecheck mypy pyright imports pytest test test-pythons demo docs bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(foreach p,$(PKGS),$(p)/pyproject.toml)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./spec -e ./reference -e ./conformance -e '.[dev]'
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# mypy runs once per distribution (each has its own tests/ with conftest.py), and again on the sources
# with --python-version 3.10, the oldest Python we support; then over the docs' extensions and tests and
# the benchmarks.
mypy: $(STAMP)
	@set -e; for p in $(PKGS); do \
	  echo "mypy --strict $$p"; $(BIN)/mypy -p lmstream.$$p; \
	  if ls $$p/tests/*.py >/dev/null 2>&1; then $(BIN)/mypy $$p/tests; fi; \
	  echo "mypy --strict --python-version 3.10 lmstream.$$p"; $(BIN)/mypy --python-version 3.10 -p lmstream.$$p; \
	done
	echo "mypy --strict docs, benchmarks and tools"; $(BIN)/mypy docs/conf.py docs/_ext docs/tests reference/bench tools
	echo "mypy --strict --python-version 3.10 docs"; $(BIN)/mypy --python-version 3.10 docs/conf.py docs/_ext
	echo "mypy --strict the guides' example modules"; MYPYPATH=docs/guides/examples $(BIN)/mypy -m my_engines -m chat_app -m test_my_engine

pyright: $(STAMP)
	$(BIN)/pyright

typecheck: mypy pyright

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck imports pytest docs

# The three packages' tests under every other supported Python (the one `make test` runs is skipped), all
# at once, each in its own .venv-X.Y (.ci/test-pythons). Interpreters are found on PATH or among pyenv's
# (.ci/find-python); give
# OTHER_PYTHONS="path/to/python3.12 ..." to choose them yourself. One that cannot be found is skipped,
# unless REQUIRE_PYTHONS=1 (CI sets it): then it is a failure. Not part of `make test`: the docs need
# Sphinx 9, which needs Python 3.11+.
SUPPORTED_PYTHONS := 3.10 3.11 3.12 3.13
OTHER_PYTHONS ?=
REQUIRE_PYTHONS ?=
PYTHONS_DEPS := pytest pytest-asyncio pytest-timeout hypothesis kani[openai,anthropic]==1.10.0 aiohttp mypy pyright[nodejs]
test-pythons:
	@set -e; \
	main=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true); \
	if [ -n "$(OTHER_PYTHONS)" ]; then found="$(OTHER_PYTHONS)"; else \
	  found=""; for v in $(SUPPORTED_PYTHONS); do \
	    [ "$$v" = "$$main" ] && { echo "python$$v: run by make test (.venv)"; continue; }; \
	    if py=$$(.ci/find-python $$v); then found="$$found $$py"; \
	    elif [ -n "$(REQUIRE_PYTHONS)" ]; then echo "python$$v: not found on PATH or in pyenv" >&2; exit 1; \
	    else echo "python$$v: not found on PATH or in pyenv, skipped"; fi; \
	  done; \
	fi; \
	[ -z "$$found" ] || PYTHONS_DEPS="$(PYTHONS_DEPS)" .ci/test-pythons $$found

# The main job: the conformance suite against the bundled example engines, the reference manager and the
# reference round stream, each with its report (--strict: SHOULD failures count too).
demo: $(STAMP)
	$(BIN)/lmstream check engine lmstream.conformance.examples:EchoEngine --strict
	$(BIN)/lmstream check engine lmstream.conformance.examples:ScriptedEngine --strict
	$(BIN)/lmstream check manager lmstream.reference:StreamManager --strict
	$(BIN)/lmstream check round lmstream.reference:round_stream --strict

bench: $(STAMP)
	$(BIN)/python reference/bench/bench_manager.py
	$(BIN)/python reference/bench/bench_stop.py

# Mutation testing (tools/mutation): every mutant of the reference through `lmstream check manager` and
# `lmstream check round`, 2 at a time, each bounded; prints the score per file and each survivor, writes
# tools/mutation/results.json (the docs publish it), and fails on a survivor equivalent.txt does not list.
# `make test` runs a fixed sample of it (tools/mutation/tests/test_run.py).
mutation: $(STAMP)
	$(BIN)/python -m tools.mutation --jobs 2 --write

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html
	$(BIN)/sphinx-build -W --keep-going -n -q -b doctest docs docs/_build/doctest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache docs/_build
