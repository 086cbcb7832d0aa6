# Build, lint and test airflow-provider-posthog-bx against both supported Airflow lines.
#
# Needs only Python 3.10+ (3.11 preferred), pip and make: `make venv` pip-installs uv into
# .venv/tools and lets uv build one virtualenv per Airflow line. Re-running is a no-op until
# pyproject.toml or this Makefile changes (stamp files).

AIRFLOW_3 := 3.3.2
AIRFLOW_2 := 2.10.5

# The compatibility lines: the newest release of every other Airflow line, each installed with
# its dependencies as they were on PyPI at its release (uv --exclude-newer: the day after the
# apache-airflow wheel's upload-time, from PyPI's JSON simple index), which is what a user
# installing it then got. Today's dependencies break some of them inside Airflow itself.
# Each runs the tests marked `compat` (make test-compat), on the Python named here.
COMPAT_LINES := af30 af31 af32 af211
af30_AIRFLOW  := 3.0.6
af30_DATE     := 2025-08-30T00:00:00Z# wheel uploaded 2025-08-29T15:56:11Z
af30_PYTHON   := 3.10
af31_AIRFLOW  := 3.1.8
af31_DATE     := 2026-03-12T00:00:00Z# wheel uploaded 2026-03-11T19:27:55Z
af31_PYTHON   := 3.11
af32_AIRFLOW  := 3.2.2
af32_DATE     := 2026-05-30T00:00:00Z# wheel uploaded 2026-05-29T05:19:55Z
af32_PYTHON   := 3.12
af211_AIRFLOW := 2.11.2
af211_DATE    := 2026-03-15T00:00:00Z# wheel uploaded 2026-03-14T18:07:32Z
af211_PYTHON  := 3.10

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)

# $(call find_python,3.10): a working python3.10 on PATH or under pyenv (its shims fail for a
# version that is not selected), else $(PYTHON). Never a download.
find_python = $(or $(shell for p in $$(command -v python$(1) 2>/dev/null) \
	$(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)); do \
	"$$p" -c "" >/dev/null 2>&1 && { echo "$$p"; break; }; done),$(PYTHON))

VENV  := .venv
TOOLS := $(VENV)/tools/bin
AF3   := $(VENV)/af3/bin
AF2   := $(VENV)/af2/bin
UV    := $(TOOLS)/uv

PKG := airflow_provider_posthog_bx

# Use the interpreter we were given; never let uv download one.
export UV_PYTHON_DOWNLOADS := never
# Verify PyPI with the system CA store (works whether or not SSL_CERT_FILE is set).
export UV_NATIVE_TLS := 1
export AIRFLOW__CORE__LOAD_EXAMPLES := False

# mypy checks one Airflow line per run: the AIRFLOW_V_* flags of $(PKG)/_compat.py are declared
# always true (Airflow 3) or always false (Airflow 2), so only that line's imports are checked.
COMPAT_FLAGS := AIRFLOW_V_3_0_PLUS AIRFLOW_V_3_1_PLUS AIRFLOW_V_3_2_PLUS AIRFLOW_V_3_3_PLUS
MYPY_AF3 := --strict --cache-dir .mypy_cache/af3 $(foreach f,$(COMPAT_FLAGS),--always-true $(f))
MYPY_AF2 := --strict --cache-dir .mypy_cache/af2 $(foreach f,$(COMPAT_FLAGS),--always-false $(f))

# Each pytest run gets a fresh Airflow home (config, SQLite DB, logs), kept after the run for
# inspection; tests/conftest.py uses it through PH_BX_TEST_AIRFLOW_HOME.
define run_pytest
	rm -rf $(CURDIR)/$(VENV)/airflow-home/$(1)
	mkdir -p $(CURDIR)/$(VENV)/airflow-home/$(1)
	AIRFLOW_HOME=$(CURDIR)/$(VENV)/airflow-home/$(1) \
	PH_BX_TEST_AIRFLOW_HOME=$(CURDIR)/$(VENV)/airflow-home/$(1) \
	PATH=$(CURDIR)/$(VENV)/$(1)/bin:$$PATH \
		$(VENV)/$(1)/bin/python -m pytest $(2)
endef

header = @printf '\n\033[1m==> %s\033[0m\n' "$(1)"

.PHONY: all venv venv-compat lint test test-af3 test-af2 test-compat demo e2e clean

all: test

venv: $(VENV)/af3/.stamp $(VENV)/af2/.stamp

$(VENV)/tools/.stamp:
	$(call header,tools venv ($(PYTHON)) with uv)
	@test -n "$(PYTHON)" || { echo "python3.11 or python3 not found on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)/tools
	$(TOOLS)/python -m pip install --quiet --disable-pip-version-check uv
	touch $@

$(VENV)/af3/.stamp: pyproject.toml Makefile $(VENV)/tools/.stamp
	$(call header,Airflow $(AIRFLOW_3) venv: $(VENV)/af3)
	test -x $(AF3)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)/af3
	$(UV) pip install --quiet --python $(AF3)/python -e ".[test,openlineage]" \
		"apache-airflow[celery,postgres]==$(AIRFLOW_3)"
	touch $@

$(VENV)/af2/.stamp: pyproject.toml Makefile $(VENV)/tools/.stamp
	$(call header,Airflow $(AIRFLOW_2) venv: $(VENV)/af2)
	test -x $(AF2)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)/af2
	$(UV) pip install --quiet --python $(AF2)/python -e ".[test]" "apache-airflow==$(AIRFLOW_2)"
	touch $@

venv-compat: $(foreach l,$(COMPAT_LINES),$(VENV)/$(l)/.stamp)

# One venv per compatibility line; our test extra resolves under the same date. uv's cache
# (UV_CACHE_DIR, default ~/.cache/uv) makes a rebuild take seconds.
define compat_venv
$(1)_INTERPRETER = $$(call find_python,$($(1)_PYTHON))
$(VENV)/$(1)/.stamp: pyproject.toml Makefile $(VENV)/tools/.stamp
	$$(call header,Airflow $($(1)_AIRFLOW) venv: $(VENV)/$(1) ($$($(1)_INTERPRETER); dependencies as of $($(1)_DATE)))
	rm -rf $(VENV)/$(1)
	$(UV) venv --quiet --python $$($(1)_INTERPRETER) $(VENV)/$(1)
	$(UV) pip install --quiet --python $(VENV)/$(1)/bin/python --exclude-newer $($(1)_DATE) \
		-e ".[test]" "apache-airflow==$($(1)_AIRFLOW)"
	touch $$@
endef
$(foreach l,$(COMPAT_LINES),$(eval $(call compat_venv,$(l))))

lint: venv
	$(call header,ruff check and ruff format --check)
	$(AF3)/ruff check .
	$(AF3)/ruff format --check .
	$(call header,mypy --strict $(PKG) on Airflow $(AIRFLOW_3))
	$(AF3)/mypy $(MYPY_AF3) $(PKG)
	$(call header,mypy --strict $(PKG) on Airflow $(AIRFLOW_2))
	$(AF2)/mypy $(MYPY_AF2) $(PKG)

# The suite spends most of its time waiting (dag.test() start-up, emulator lifecycles), so two
# lanes share the 2 cores: Airflow 3.3.2 in one, Airflow 2.10.5 then the compatibility lines in
# the other, each with its own Airflow home; each target's output is printed whole when it
# ends. The end-to-end deployments then run alone.
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-af3 test-other-lines
	$(MAKE) --no-print-directory e2e

.PHONY: test-other-lines
test-other-lines: test-af2
	$(MAKE) --no-print-directory test-compat

test-af3: $(VENV)/af3/.stamp
	$(call header,pytest on Airflow $(AIRFLOW_3): all but the end-to-end tests)
	$(call run_pytest,af3,-m "not e2e")

# The emulator tests do not depend on Airflow: they run once, on Airflow 3.
test-af2: $(VENV)/af2/.stamp
	$(call header,pytest on Airflow $(AIRFLOW_2): all but the emulator-only tests)
	$(call run_pytest,af2,-m "not emulator and not e2e")

# The compatibility set (tests marked `compat`: the hook, every operator and sensor through
# dag.test(), deferrable included, trigger serialisation) on each compatibility line:
# make test-compat, or one line, e.g. make test-af30.
test-compat: $(foreach l,$(COMPAT_LINES),test-$(l))

define compat_test
.PHONY: test-$(1)
test-$(1): $(VENV)/$(1)/.stamp
	$$(call header,pytest on Airflow $($(1)_AIRFLOW) (Python $($(1)_PYTHON)): the compatibility set)
	$$(call run_pytest,$(1),-m "compat and not emulator and not e2e" --durations=5)
endef
$(foreach l,$(COMPAT_LINES),$(eval $(call compat_test,$(l))))

# The demo needs only the Airflow 3 venv.
demo: $(VENV)/af3/.stamp
	$(call header,demo on Airflow $(AIRFLOW_3))
	PATH=$(CURDIR)/$(AF3):$$PATH $(AF3)/python scripts/demo.py

# Two real Airflow 3 deployments run the example DAGs and the fault checks against the
# emulator, one after the other: a production-shaped one (Postgres, CeleryExecutor with a Redis
# broker and two workers: tests/e2e/celery/; scripts/install-services.sh installs Debian's
# postgresql and redis-server when missing, the tests start and stop them on 127.0.0.1), then
# a quick one (LocalExecutor, SQLite: tests/e2e/conftest.py). Each has api-server, scheduler,
# dag-processor and triggerer. These tests run only here (test-af3 and test-af2 deselect them),
# in their own Airflow home so that `make test` keeps test-af3's; the deployments' logs stay in
# $(VENV)/airflow-home/e2e/.
e2e: $(VENV)/af3/.stamp
	$(call header,end-to-end tests on real Airflow $(AIRFLOW_3) deployments)
	bash scripts/install-services.sh
	rm -rf $(CURDIR)/$(VENV)/airflow-home/e2e
	mkdir -p $(CURDIR)/$(VENV)/airflow-home/e2e
	AIRFLOW_HOME=$(CURDIR)/$(VENV)/airflow-home/e2e \
	PH_BX_TEST_AIRFLOW_HOME=$(CURDIR)/$(VENV)/airflow-home/e2e \
	PATH=$(CURDIR)/$(AF3):$$PATH \
		$(AF3)/python -m pytest tests/e2e -m e2e --durations=10

# Benchmarks print figures (no asserts); see benchmarks/README.md. Their venv adds the dbt-cloud
# provider for the import-cost comparison only: it is not a dependency of this package.
# `make bench BENCH_FLAGS=--quick` for a short run.
BENCH := $(VENV)/bench/bin
BENCH_FLAGS ?=

$(VENV)/bench/.stamp: pyproject.toml $(VENV)/tools/.stamp
	$(call header,benchmark venv: $(VENV)/bench)
	test -x $(BENCH)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)/bench
	$(UV) pip install --quiet --python $(BENCH)/python -e . "apache-airflow==$(AIRFLOW_3)" \
		apache-airflow-providers-dbt-cloud
	touch $@

.PHONY: bench
bench: $(VENV)/bench/.stamp
	$(call header,benchmarks on Airflow $(AIRFLOW_3) (load: $(shell cut -d' ' -f1-3 /proc/loadavg)))
	$(BENCH)/python benchmarks/parse_cost.py --python $(BENCH)/python $(BENCH_FLAGS)
	$(BENCH)/python benchmarks/triggerer_scale.py $(BENCH_FLAGS)
	$(BENCH)/python benchmarks/api_budget.py $(BENCH_FLAGS)
	$(BENCH)/python benchmarks/logs_sensor_volume.py $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
