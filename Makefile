# Everything goes through the project venv; targets are idempotent.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench-ingest bench-stage bench-process bench-publish bench-campaign bench-scale chaos audit eopf-env clean \
        system-deps node-check browser

$(STAMP): requirements.txt requirements-dev.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps spyndex==0.12.0
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP) node-check
	$(BIN)/rspy-batch demo

test: $(STAMP) system-deps node-check
	$(BIN)/ruff check rspy_batch tasks tests bench
	$(BIN)/pytest -q -n 2 --dist loadgroup --durations=15

lint: $(STAMP)
	$(BIN)/ruff check rspy_batch tasks tests bench

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-stage: $(STAMP)
	$(BIN)/python bench/stage.py

bench-publish: $(STAMP)
	$(BIN)/python bench/publish.py

bench-process: $(STAMP)
	$(BIN)/python bench/process.py

bench-campaign: $(STAMP)
	$(BIN)/python bench/campaign.py

bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

# The chaos test at its full count (CI runs fewer iterations of the same test); -s shows
# each iteration's seed and where its kills landed.
CHAOS_ITERATIONS ?= 20
chaos: $(STAMP)
	RSPY_CHAOS_ITERATIONS=$(CHAOS_ITERATIONS) $(BIN)/pytest -q -s tests/test_chaos.py

# Dependency audit (SECURITY.md, "Dependency audit"). pip-audit runs from a throwaway venv so
# that neither it nor its own dependencies ever enter .venv. --strict makes a package that
# cannot be looked up fail the run: without it, pip-audit skips every package it cannot find
# and still prints "No known vulnerabilities found" with rc 0.
PIP_AUDIT_VERSION ?= 2.10.1
AUDIT_FLAGS := --no-deps --disable-pip --strict --progress-spinner off
# Findings accepted in SECURITY.md (matched by id or alias); only the EOPF venv has any.
AUDIT_EOPF_ACCEPTED := --ignore-vuln CVE-2026-48818 --ignore-vuln CVE-2026-54282 \
	--ignore-vuln CVE-2026-54283 --ignore-vuln CVE-2026-49825
audit:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q --disable-pip-version-check pip-audit==$(PIP_AUDIT_VERSION); \
	rc=0; \
	echo "== constraints.txt (main venv)"; \
	"$$tmp/venv/bin/pip-audit" -r constraints.txt $(AUDIT_FLAGS) || rc=1; \
	echo "== requirements-eopf.txt (EOPF CPM venv)"; \
	"$$tmp/venv/bin/pip-audit" -r requirements-eopf.txt $(AUDIT_FLAGS) $(AUDIT_EOPF_ACCEPTED) || rc=1; \
	exit $$rc

# The separate EOPF CPM venv (built on first use anyway; this builds it ahead).
eopf-env: $(STAMP)
	$(BIN)/python -c "from rspy_batch.processing.eopf_env import ensure_eopf_env; print(ensure_eopf_env())"

# Debian's chromium + chromedriver for the STAC Browser DOM tests (a fresh CI machine has
# neither). apt-get only when one is missing; `apt-get update` only if the install fails.
CHROMIUM_PKGS := chromium chromium-driver
CHROMIUM      ?= /usr/bin/chromium
CHROMEDRIVER  ?= /usr/bin/chromedriver
system-deps:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	else echo "system-deps: $(CHROMIUM) or $(CHROMEDRIVER) is missing and this" \
	  "is not root (no sudo either): run 'apt-get install -y --no-install-recommends" \
	  "$(CHROMIUM_PKGS)' as root" >&2; exit 1; fi; \
	APT="$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"; \
	echo "system-deps: installing $(CHROMIUM_PKGS)"; \
	$$APT install -y -q --no-install-recommends $(CHROMIUM_PKGS) >/dev/null \
	  || { $$APT update -q >/dev/null && \
	       $$APT install -y -q --no-install-recommends $(CHROMIUM_PKGS) >/dev/null; }; \
	[ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ] \
	  || { echo "system-deps: apt-get did not provide chromium and chromedriver" >&2; exit 1; }

# STAC Browser is built with npm (Node.js 20): the tests build it, the demo serves it.
node-check:
	@npm --version >/dev/null 2>&1 || { echo "node-check: npm (Node.js 20) is needed to build" \
	  "STAC Browser; install nodejs and npm (e.g. from nodejs.org or NodeSource)" >&2; exit 1; }

# The STAC Browser build (cached under ~/.cache/rspy-batch, or $RSPY_BROWSER_CACHE; built
# on first use anyway, in about 3-4 minutes; this builds it ahead).
browser: $(STAMP) node-check
	$(BIN)/python -c "from rspy_batch.browser import build_browser; print(build_browser(log=print))"

clean:
	rm -rf $(VENV) demo .pytest_cache
