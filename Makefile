# Everything a fresh machine needs, in two targets: `make demo` and `make test`.
# Both create .venv, build the Rust core into it (maturin) and install the Python dependencies;
# `make test` also installs the front end's npm packages. The browser test needs Debian's
# chromium (.ci/run installs it; without it that test is skipped unless VELOCITY_REQUIRE_BROWSER=1).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.velocity-built
SOURCES := pyproject.toml Cargo.toml vfl-rs/Cargo.toml $(shell find vfl-rs/src -name '*.rs' 2>/dev/null)

.PHONY: demo test lint stubs test-rust test-js test-python test-notebooks bench clean

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.9,<2"
	$(VENV)/bin/maturin develop --release --extras dev
	touch $@

demo: $(STAMP)
	$(VENV)/bin/velocity sweep examples/robustness.toml --out out/demo

test: lint test-rust test-js test-python test-notebooks

# Static gates: formatting and lints in both languages, and the type check of the package
# (the front end's tsc runs in test-js).
lint: $(STAMP)
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

test-rust:
	cargo test --workspace

# The panel's front end: type check, vitest, and the bundle shipped in velocity/static/.
widgets/node_modules/.package-lock.json: widgets/package.json widgets/package-lock.json
	cd widgets && npm ci --no-audit --no-fund

test-js: widgets/node_modules/.package-lock.json
	cd widgets && npm run typecheck && npm test && npm run build

# The chart specs the vitest tests render, and the round row the front end's RoundRow type is
# checked against (tests/test_panel.py checks both are current).
widgets/test/fixtures/specs.json: velocity/panel/charts.py $(STAMP)
	$(PY) -c "import json, sys; from velocity.panel.charts import chart_specs; json.dump(chart_specs(), sys.stdout, indent=1, sort_keys=True); print()" > $@

widgets/test/fixtures/round_row.json: velocity/rounds.py $(STAMP)
	$(PY) -c "import json, sys; from velocity.rounds import panel_row_fixture; json.dump(panel_row_fixture(), sys.stdout, indent=1); print()" > $@

# The type stubs of the registry-generated classes (tests/test_api.py checks they are current).
stubs: $(STAMP)
	$(PY) -m velocity._stubs

test-python: $(STAMP)
	$(PY) -m pytest

# Every teaching notebook, top to bottom, on the built-in offline data.
test-notebooks: $(STAMP)
	$(PY) -m pytest --nbmake --nbmake-timeout=300 notebooks/

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]" --no-build-isolation || $(PY) -m pip install --quiet "flwr>=1.20" "byzfl>=0.0.10" "torch>=2.4"
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) target widgets/node_modules
