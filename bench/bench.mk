# Benchmarks (bench/README.md, figures in bench/RESULTS.md). Included by the Makefile; not part of
# `make test`, which runs only the tiny smoke version in tests/test_bench.py.
#
#   make bench                               one run, one table, about 3 minutes (knobs: BENCH_* in bench/run.py)
#   make bench BENCH_LITELLM=1               the same with the LiteLLM proxy (its own venv, .venv-litellm)
#   make bench BENCH_VARIANTS=fast,patch     also measure httptools+uvloop and bench/patches/*.diff
#   make bench-profile [BENCH_STREAM=1]      the gateway under cProfile (py-spy: python -m bench.profile --py-spy)
#   make soak [SOAK_SECONDS=300]             mixed traffic with injected faults

LITELLM_VENV := .venv-litellm
BENCH_VENV := .venv-bench
BENCH_LITELLM ?= 0
yes = $(filter 1 true yes,$(1))

.PHONY: bench bench-litellm bench-fast-server bench-profile soak

$(LITELLM_VENV)/.installed: bench/requirements-litellm.txt
	test -x $(LITELLM_VENV)/bin/python || $(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		-r bench/requirements-litellm.txt
	touch $@

# httptools, uvloop (for BENCH_FAST_SERVER / BENCH_VARIANTS) and py-spy; never used by the gateway itself.
$(BENCH_VENV)/.installed: bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench-litellm: $(LITELLM_VENV)/.installed

bench-fast-server: $(BENCH_VENV)/.installed

bench: install $(if $(call yes,$(BENCH_LITELLM)),bench-litellm) \
		$(if $(or $(call yes,$(BENCH_FAST_SERVER)),$(BENCH_VARIANTS)),bench-fast-server)
	BENCH_LITELLM=$(BENCH_LITELLM) $(PY) -m bench.run

bench-profile: install
	$(PY) -m bench.profile $(if $(call yes,$(BENCH_STREAM)),--stream)

soak: install
	$(PY) -m bench.soak
