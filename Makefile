# The two commands: `make run` serves the gateway locally with a sandbox; `make test` runs every test.
# Both install what they need (a virtual environment from requirements*.txt, Azurite from npm) and are
# safe to run again.

# Python 3.13: the version the function app deploys with (docs/architecture.md), so tests run on it too.
# pyenv's 3.13 when there is one, else python3.13 on the PATH.
PYENV_313 := $(lastword $(sort $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13.*/bin/python)))
PYTHON ?= $(or $(PYENV_313),$(shell command -v python3.13 2>/dev/null),python3.13)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install run stop test test-fast lint clean redis chromium

include infra/infra.mk
-include bench/bench.mk

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 13), sys.version' 2>/dev/null \
		|| { echo "Python 3.13 is needed (the deployed runtime): install it, or pass PYTHON=/path/to/python3.13"; exit 1; }
	$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || rm -rf $(VENV)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The Functions host stand-in's gRPC code (funchost/, development only), generated from the vendored
# protos with grpcio-tools; never committed.
RPC_STAMP := funchost/_rpc/.generated
$(RPC_STAMP): $(VENV)/.installed funchost/generate.py $(wildcard funchost/proto/*.proto funchost/proto/*/*.proto)
	$(PY) -m funchost.generate
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# redis-server for the limit counters' tests (they start their own on a free loopback port, never the
# system service): Debian's package, installed once.
redis:
	@command -v redis-server >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# Debian's chromium for the console's browser tests (Playwright drives it; never `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

install: $(VENV)/.installed node_modules/.installed $(RPC_STAMP) redis chromium

local.settings.json:
	cp local.settings.sample.json local.settings.json

# `make run &` (or in another shell) runs in the background: `make stop` stops it, as Ctrl-C would.
run: install local.settings.json
	$(PY) -m sandbox

stop:
	@if test -x $(PY); then $(PY) -m sandbox stop; else echo "no sandbox is running"; fi

lint: install
	$(PY) -m ruff check .

test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) test-infra

# Unit tests only (no server, no subprocess): the quick loop while editing.
test-fast: install
	$(PY) -m pytest -m unit -q -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-infra node_modules .azurite .sandbox .pytest_cache .ruff_cache
