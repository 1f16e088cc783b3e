# sma — every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 3

.PHONY: run test test-deps browser-deps test-sqlite test-postgres bench chaos lint deps clean assets compose-check screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat mode: a plain .pth entry, so no import hook slows every interpreter start; its
	# deprecation notice from setuptools ("Compat editable installs") is filtered out here only
	PYTHONWARNINGS="ignore:Compat editable installs:UserWarning" \
	  $(PY) -m pip install --quiet -e ".[dev]" --config-settings editable_mode=compat
	@touch $(STAMP)

# apt-get install, as root, of the packages in $$missing: it waits up to 120 s for another
# apt or dpkg holding the lock (DPkg::Lock::Timeout) rather than failing. `apt-get update`,
# which has no such timeout, runs only when apt's lists do not know a package, and is tried
# again every 5 s for 2 minutes while another apt holds the lists' lock.
define apt_install
stale=""; for p in $$missing; do apt-cache show "$$p" >/dev/null 2>&1 || stale=1; done; \
if [ -n "$$stale" ]; then \
  for i in $$(seq 24); do \
    out=$$(apt-get update -qq 2>&1) && break; \
    case "$$out" in \
      *"Could not get lock"*) echo "waiting for another apt to let go of its lock"; sleep 5;; \
      *) echo "$$out" >&2; exit 1;; \
    esac; \
  done; \
fi; \
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq $$missing
endef

# what `make run` needs: redis-server for the embedded Redis of `sma up` (and the tests) when
# nothing else provides one; as root, bubblewrap (a PID namespace per job) and the
# unprivileged user jobs run as (SMA_JOB_USER, default sma-job)
JOB_USER := $(if $(filter undefined,$(origin SMA_JOB_USER)),sma-job,$(SMA_JOB_USER))
deps: $(STAMP)
	@missing=""; \
	if [ -z "$$SMA_REDIS_URL" ] && ! command -v redis-server >/dev/null; then missing="redis-server"; fi; \
	if [ "$$(id -u)" = 0 ] && ! command -v bwrap >/dev/null; then missing="$$missing bubblewrap"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    $(apt_install); \
	  elif echo "$$missing" | grep -q redis; then \
	    echo "sma needs redis-server on PATH (or SMA_REDIS_URL); install it first" >&2; exit 1; \
	  fi; \
	fi
	@if [ "$$(id -u)" = 0 ] && [ -n "$(JOB_USER)" ] && ! id -u "$(JOB_USER)" >/dev/null 2>&1; then \
	  echo "creating the job user $(JOB_USER)"; \
	  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$(JOB_USER)"; \
	fi

# what only the tests need, as root: Chromium (the portal's browser tests and make
# screenshots), docker-compose (compose-check), and OpenLDAP's slapd with ldap-utils (the
# directory sign-in tests start their own slapd: tests/slapd.py)
browser-deps: deps
	@missing=""; \
	if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then missing="chromium"; fi; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then $(apt_install); fi

test-deps: browser-deps
	@missing=""; \
	if [ "$$(id -u)" = 0 ] && ! command -v docker-compose >/dev/null; then missing="docker-compose"; fi; \
	if [ "$$(id -u)" = 0 ] && [ ! -x /usr/sbin/slapd ]; then missing="$$missing slapd ldap-utils"; fi; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then $(apt_install); fi

# `make run PORT=9000 HOST=0.0.0.0 DATA_DIR=/srv/sma WORKERS=4`, on make's command line, go
# to `sma up` as its options (in the environment, `sma up` reads SMA_PORT, SMA_HOST and
# SMA_DATA_DIR itself; a PORT or HOST some other program exported is not taken)
up_option = $(if $(filter command line,$(origin $1)),$2 "$($1)")
UP_OPTIONS = $(call up_option,HOST,--host) $(call up_option,PORT,--port) \
  $(call up_option,DATA_DIR,--data-dir) $(call up_option,WORKERS,--workers)
run: deps
	$(VENV)/bin/sma up $(strip $(UP_OPTIONS))

# The whole suite on SQLite, then again on PostgreSQL: the one of SMA_TEST_DATABASE_URL or,
# when that is not set at all, the local one when it lets postgres in on 127.0.0.1:5432 (as
# .ci/run does); SMA_TEST_DATABASE_URL= (set, empty) keeps to SQLite. The stack, outage and
# database-fault tests need PostgreSQL: on SQLite alone they skip. The last line says which
# databases the suite ran on.
LOCAL_POSTGRES := postgresql://postgres@127.0.0.1:5432/postgres
TEST_POSTGRES := $(if $(filter undefined,$(origin SMA_TEST_DATABASE_URL)),auto,$(SMA_TEST_DATABASE_URL))
test: deps test-deps compose-check
	$(VENV)/bin/ruff check .
	@pg='$(TEST_POSTGRES)'; why="SMA_TEST_DATABASE_URL is set empty"; \
	if [ "$$pg" = auto ]; then \
	  pg=""; why="no PostgreSQL let postgres in on 127.0.0.1:5432: set SMA_TEST_DATABASE_URL"; \
	  if $(PY) -c "import psycopg; psycopg.connect('$(LOCAL_POSTGRES)', connect_timeout=3).close()" 2>/dev/null; then \
	    pg='$(LOCAL_POSTGRES)'; \
	  fi; \
	fi; \
	shown=$$(echo "$$pg" | sed -E 's#//([^:@/]*):[^@/]*@#//\1:***@#'); \
	echo "== on SQLite"; \
	env -u SMA_TEST_DATABASE_URL $(PY) -m pytest -n $(PYTEST_WORKERS) -q || exit; \
	if [ -n "$$pg" ]; then \
	  echo "== again on PostgreSQL ($$shown)"; \
	  SMA_TEST_DATABASE_URL="$$pg" $(PY) -m pytest -n $(PYTEST_WORKERS) -q || exit; \
	  echo "make test: the suite passed on SQLite and on PostgreSQL ($$shown)"; \
	else \
	  echo "make test: the suite passed on SQLite only; the tests that need PostgreSQL" \
	       "skipped ($$why)"; \
	fi

bench: deps
	@mkdir -p bench/results
	$(PY) bench/jobs.py | tee bench/results/jobs.json
	$(PY) bench/output.py | tee bench/results/output.json
	$(PY) bench/capture.py | tee bench/results/capture.json
	$(PY) bench/portal.py | tee bench/results/portal.json
	$(PY) bench/live.py | tee bench/results/live.json
	$(PY) bench/modules.py | tee bench/results/modules.json
	$(PY) bench/throughput.py | tee bench/results/throughput.json
	# PostgreSQL at 127.0.0.1:5432 (HISTORY_PG): 1,000,000 jobs, 20,000,000 records, about
	# 4 GB while it runs; it says it skipped when no server answers (HISTORY_JOBS scales down)
	$(PY) bench/history.py | tee bench/results/history.json
	$(PY) bench/sequential.py | tee bench/results/sequential.json
	$(PY) bench/latency.py | tee bench/results/latency.json
	$(PY) bench/warm.py | tee bench/results/warm.json

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
	    missing=docker-compose; $(apt_install) >/dev/null; \
	  else echo "compose-check needs docker-compose (apt-get install docker-compose)" >&2; exit 1; fi; \
	fi
	@tmp=$$(mktemp -d) && cp docker-compose.yml $$tmp/ && cp .env.example $$tmp/.env && \
	  (cd $$tmp && docker-compose config -q) && rm -rf $$tmp && echo "docker-compose.yml is valid"

# the portal's front-end libraries from npm, bundled into smaweb/portal/static/vendor/ (the
# output is committed, so `make run` needs no Node.js)
assets:
	cd assets && npm ci --no-audit --no-fund && node build.mjs

# PNGs of the portal's main pages at 1280 and 375 px wide into screenshots/ (not committed),
# from a private stack with sample runbooks and jobs (tools/screenshots.py)
screenshots: browser-deps
	$(PY) tools/screenshots.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
