# sma — every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 3

.PHONY: run test test-sqlite test-postgres bench chaos lint deps clean assets compose-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat mode: a plain .pth entry, so no import hook slows every interpreter start
	$(PY) -m pip install --quiet -e ".[dev]" --config-settings editable_mode=compat
	@touch $(STAMP)

# redis-server for the embedded Redis of `sma up` and the tests, when nothing else provides one;
# as root: bubblewrap (a PID namespace per job), Chromium (the portal's browser tests) and
# the unprivileged user jobs run as
# (SMA_JOB_USER, default sma-job)
JOB_USER := $(if $(filter undefined,$(origin SMA_JOB_USER)),sma-job,$(SMA_JOB_USER))
deps: $(STAMP)
	@missing=""; \
	if [ -z "$$SMA_REDIS_URL" ] && ! command -v redis-server >/dev/null; then missing="redis-server"; fi; \
	if [ "$$(id -u)" = 0 ] && ! command -v bwrap >/dev/null; then missing="$$missing bubblewrap"; fi; \
	if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then missing="$$missing chromium"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  elif echo "$$missing" | grep -q redis; then \
	    echo "sma needs redis-server on PATH (or SMA_REDIS_URL); install it first" >&2; exit 1; \
	  fi; \
	fi
	@if [ "$$(id -u)" = 0 ] && [ -n "$(JOB_USER)" ] && ! id -u "$(JOB_USER)" >/dev/null 2>&1; then \
	  echo "creating the job user $(JOB_USER)"; \
	  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$(JOB_USER)"; \
	fi

run: deps
	$(VENV)/bin/sma up

# The whole suite on SQLite, then again on PostgreSQL when SMA_TEST_DATABASE_URL is set.
test: deps compose-check
	$(VENV)/bin/ruff check .
	env -u SMA_TEST_DATABASE_URL $(PY) -m pytest -n $(PYTEST_WORKERS) -q
	@if [ -n "$$SMA_TEST_DATABASE_URL" ]; then \
	  echo "== again on PostgreSQL ($$SMA_TEST_DATABASE_URL)"; \
	  $(PY) -m pytest -n $(PYTEST_WORKERS) -q; \
	fi

bench: deps
	@mkdir -p bench/results
	$(PY) bench/jobs.py | tee bench/results/jobs.json
	$(PY) bench/output.py | tee bench/results/output.json
	$(PY) bench/portal.py | tee bench/results/portal.json
	$(PY) bench/live.py | tee bench/results/live.json

# the chaos benchmark (docs/chaos.md): 1,000 jobs while workers, Redis, PostgreSQL and beat
# are killed and restarted, about 20 minutes; not part of `make bench` or `make test`. It
# starts its own PostgreSQL from the server binaries (/usr/lib/postgresql/*/bin) and its own
# redis-server. CHAOS_ARGS passes options: make chaos CHAOS_ARGS="--jobs 100 --minutes 1"
CHAOS_ARGS ?=
chaos: deps
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  echo "make chaos needs PostgreSQL's server binaries (initdb, pg_ctl, postgres): apt-get install postgresql" >&2; \
	  exit 2; \
	fi
	@mkdir -p bench/results
	set -o pipefail; $(PY) bench/chaos.py $(CHAOS_ARGS) | tee bench/results/chaos.json

# docker-compose.yml checked offline by Debian's docker-compose (no Docker engine needed),
# with .env.example standing in for .env
compose-check:
	@if ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; \
	  else echo "compose-check needs docker-compose (apt-get install docker-compose)" >&2; exit 1; fi; \
	fi
	@tmp=$$(mktemp -d) && cp docker-compose.yml $$tmp/ && cp .env.example $$tmp/.env && \
	  (cd $$tmp && docker-compose config -q) && rm -rf $$tmp && echo "docker-compose.yml is valid"

# the portal's front-end libraries from npm, bundled into smaweb/portal/static/vendor/ (the
# output is committed, so `make run` needs no Node.js)
assets:
	cd assets && npm ci --no-audit --no-fund && node build.mjs

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
