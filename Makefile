# The two quickstart targets: `make serve` and `make test`. Both set up .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.palyra-installed
PYTHON ?= python3

.PHONY: serve test lint fmt bench bench-quick bench-stacks bench-tools fake-upstream clean console-screenshots

$(STAMP): pyproject.toml requirements.txt requirements-test.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/palyra serve

lint: $(STAMP)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

fmt: $(STAMP)
	$(PY) -m ruff check --fix src tests bench
	$(PY) -m ruff format src tests bench

LITELLM_VENV := bench/.litellm-venv
LITELLM_STAMP := $(LITELLM_VENV)/.installed
BENCH_ARGS ?=

# LiteLLM's proxy for the bench only, in its own venv from hash-pinned requirements.
$(LITELLM_STAMP): bench/litellm-requirements.txt
	@test -x $(LITELLM_VENV)/bin/python || $(shell $(PY) -c 'import sys; print(sys._base_executable)' 2>/dev/null || echo $(PYTHON)) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r bench/litellm-requirements.txt
	@touch $(LITELLM_STAMP)

bench-tools:
	@command -v wrk >/dev/null && command -v hey >/dev/null || { \
	  echo "bench: installing wrk and hey (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk hey >/dev/null; } \
	  || echo "bench: could not install wrk/hey; throughput falls back to an in-process loop"

# The whole run (about 15 minutes, 10 of them the soak); `make bench-quick` runs every scenario
# shorter (about two minutes). Both write bench/last-run.json.
bench: $(STAMP) $(LITELLM_STAMP) bench-tools
	$(PY) bench/overhead.py --workers $(shell nproc 2>/dev/null || echo 2) $(BENCH_ARGS)

bench-quick: $(STAMP) $(LITELLM_STAMP) bench-tools
	$(PY) bench/overhead.py --quick --workers $(shell nproc 2>/dev/null || echo 2) $(BENCH_ARGS)

.PHONY: serve test lint fmt bench bench-quick bench-stacks bench-tools fake-upstream clean console-screenshots

fake-upstream: $(STAMP)
	$(VENV)/bin/palyra fake-upstream

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
