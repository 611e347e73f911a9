# Meridian developer commands. `make run` and `make test` are the two the README promises.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEMPLATES := template.yaml $(wildcard stacks/*.yaml) $(wildcard hotpath/template.yaml)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test lint typecheck cfn pytest coverage-floor run demo drill drill-node bench bench-engine bench-wire bench-api bench-move \
        bench-pipeline bench-recovery bench-fuzz bench-local bench-gateway build embed lock openapi clean

# The native matching core (Cython -> C -> gcc), built in place beside its sources.
NATIVE := $(VENV)/.native-core

setup: $(STAMP) $(NATIVE)

$(NATIVE): $(STAMP) hotpath/setup_native.py hotpath/meridian_hotpath/engine/native.pyx \
           hotpath/meridian_hotpath/engine/native_support.h hotpath/meridian_hotpath/journal_sync.pyx \
           hotpath/meridian_hotpath/journal_sync.pxd hotpath/meridian_hotpath/replica_receiver.pyx
	$(PY) hotpath/setup_native.py --quiet build_ext --inplace
	touch $@

$(STAMP): requirements/lock.txt clients/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Meridian needs $(PYTHON) on PATH" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	@# The client package, editable: puts the `meridian` command in .venv/bin (its dependencies are locked above).
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e clients
	@# Source folders on the venv's path: the layer, the matching node, the local platform, each function.
	@printf '%s\n' "$(CURDIR)/layers/shared" "$(CURDIR)/hotpath" "$(CURDIR)/local" "$(CURDIR)/clients" "$(CURDIR)/gateway" "$(CURDIR)" \
	  "import sys, glob; sys.path.extend(sorted(glob.glob('$(CURDIR)/functions/*/')))" \
	  > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/meridian-dev.pth
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy layers/shared/meridian hotpath/meridian_hotpath gateway/meridian_gateway local functions bench tests tools

cfn: setup
	$(BIN)/cfn-lint $(TEMPLATES)
	$(BIN)/sam validate --lint --template-file template.yaml --region $(AWS_DEFAULT_REGION)
	$(BIN)/checkov --quiet --compact --skip-download --framework cloudformation --config-file .checkov.yaml \
	  $(addprefix -f ,$(TEMPLATES))

# Branch coverage (pyproject.toml [tool.coverage]); the hot path, the layer and the order API must
# stay at or above tests/coverage-floor.json (`make coverage-floor` lifts the floors, never lowers them).
pytest: setup
	rm -f .coverage .coverage.*
	$(BIN)/pytest -n 2 --cov --cov-report=term-missing:skip-covered tests
	$(PY) -m tests.coverage_floor

coverage-floor: setup
	$(PY) -m tests.coverage_floor --raise

test: lint typecheck cfn pytest

run: setup
	$(PY) -m meridian_local run $(if $(DEMO),--demo,)

demo: setup
	$(PY) -m meridian_local demo

drill: setup
	$(PY) -m meridian_local drill --failback
	$(PY) -m meridian_local drill-node

drill-node: setup
	$(PY) -m meridian_local drill-node

# The files templates carry inline (Grafana dashboard, Prometheus configuration, node bootstrap) are
# copied in from observability/ and hotpath/deploy/ first (tests/infra/embedded.py).
build: setup embed
	$(BIN)/sam build --template-file template.yaml

embed: setup
	$(PY) -m tests.infra.embedded --write

bench: bench-engine bench-wire bench-api bench-pipeline bench-recovery bench-fuzz bench-gateway bench-move

bench-engine: setup
	$(PY) bench/engine_bench.py

bench-wire: setup
	$(PY) bench/wire_bench.py

bench-api: setup
	$(PY) bench/api_bench.py

bench-pipeline: setup
	$(PY) bench/pipeline_bench.py

bench-recovery: setup
	$(PY) bench/recovery_bench.py

bench-gateway: setup
	$(PY) bench/gateway_bench.py

bench-fuzz: setup
	$(PY) bench/fuzz_bench.py

bench-move: setup
	$(PY) bench/symbol_move_bench.py

# Against the running `make run` (another terminal): 8 clients placing orders through the REST API.
bench-local: setup
	$(PY) bench/local_bench.py

openapi: setup
	$(PY) -m orders_api.openapi_export docs/api/openapi.json
	$(PY) -m tools.sdk_models

lock:
	$(BIN)/pip freeze --exclude-editable > requirements/lock.txt

clean:
	rm -rf .aws-sam build bench/results hotpath/build hotpath/meridian_hotpath/engine/native.c hotpath/meridian_hotpath/journal_sync.c hotpath/meridian_hotpath/replica_receiver.c hotpath/meridian_hotpath/engine/*.so hotpath/meridian_hotpath/*.so $(VENV)/.native-core .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage .coverage.*

