# labctl developer entry points. `make demo` and `make test` work on a fresh machine:
# they create .venv/, build the Kubernetes toolchain from Go modules (cached under
# ~/.cache/labctl, keyed by version) and then do their job.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup toolchain debs test unit cluster-tests demo lint bench clean help e2e

help:
	@echo "make demo   - start the simulated cluster and run the GPU-scheduling scenario"
	@echo "make test   - lint, then the whole test suite (unit + cluster tests on a sim cluster)"
	@echo "make setup  - create .venv/ and build the Kubernetes toolchain"
	@echo "make lint   - ruff, mypy (strict), import-linter (the layers), kube-score (every rendered manifest)"
	@echo "make bench  - benchmarks, printed beside their baselines"
	@echo "make e2e    - a sim with a real kubelet node running real pods (root; installs containerd & co.)"

$(STAMP): pyproject.toml
	@command -v go >/dev/null || { echo "Go is required (go1.26): install it and retry" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) toolchain

# Debian packages the tests run for real: Prometheus, Alertmanager and promtool; bubblewrap
# (bwrap) is the sandbox learner code runs in; git is what graders clone submissions with;
# chromium is the browser tests/browser drive (through Playwright, pointed at /usr/bin/chromium).
DEBS := prometheus prometheus-alertmanager bubblewrap git chromium
# A real node: containerd, runc, CNI plugins, iptables, ip; debootstrap makes the images' base.
NODE_DEBS := containerd runc containernetworking-plugins iptables iproute2 debootstrap
debs:
	hack/install-debian-deps $(DEBS)

# cyclonus computes what NetworkPolicies let through (tests/unit/test_egress_reachability.py).
toolchain: $(STAMP)
	$(BIN)/labctl toolchain build
	$(BIN)/labctl toolchain build --group cyclonus

# kube-score (built once from its Go module, cached) scores every manifest labctl renders;
# hack/kube-score.yaml is the one place its ignored tests are listed, each with its reason.
lint: $(STAMP)
	$(BIN)/ruff check labctl graders tests bench hack
	$(BIN)/mypy labctl graders
	$(BIN)/lint-imports --no-cache
	$(BIN)/labctl toolchain build --group kube-score
	$(BIN)/python hack/kube-score.py

test: setup debs lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/labctl toolchain build --group cyclonus
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

demo: setup debs
	PATH="$(CURDIR)/$(BIN):$$PATH" hack/demo.sh

bench: setup
	$(BIN)/python bench/sim_up.py
	$(BIN)/python bench/grading.py
	$(BIN)/python bench/provision.py
	$(BIN)/python bench/dashboard.py

# tests/e2e: a real kubelet node joins a sim and runs real pods. Needs root; the Debian packages
# are installed only when missing. Builds kubelet, kube-proxy and the pause image first.
e2e: setup debs
	hack/install-debian-deps $(NODE_DEBS)
	$(BIN)/python -m labctl.localcluster.realnode build
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
