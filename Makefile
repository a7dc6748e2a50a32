# Everything a fresh machine needs, in two targets: `make demo` and `make test`.
# Both create .venv, build the Rust core into it (maturin) and install the Python dependencies.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.velocity-built
SOURCES := pyproject.toml Cargo.toml vfl-rs/Cargo.toml $(shell find vfl-rs/src -name '*.rs' 2>/dev/null)

.PHONY: demo test test-rust test-python bench clean

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.9,<2"
	$(VENV)/bin/maturin develop --release --extras dev
	touch $@

demo: $(STAMP)
	$(VENV)/bin/velocity sweep examples/robustness.toml --out out/demo

test: test-rust test-python

test-rust:
	cargo test --workspace

test-python: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]" --no-build-isolation || $(PY) -m pip install --quiet "flwr>=1.20" "byzfl>=0.0.10" "torch>=2.4"
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) target
