# Developer entry points. `make` alone lists the targets.
#
# The only prerequisite is python3 (with its venv module): `uv` is bootstrapped into .tools/,
# and the project's environment is synced into .venv/ from uv.lock.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV_STAMP := .venv/.make-synced
BIN := .venv/bin
PYTEST_ARGS ?=

.PHONY: help .venv run test lint fmt bench bench-smoke screenshots clean distclean

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_.\/-]+:.*## / { printf "  %-16s %s\n", $$1, $$2 }' \
		$(MAKEFILE_LIST)
	@echo "Variables: PYTEST_ARGS='...' is passed to pytest by 'make test'."

.tools/bin/uv: ## Bootstrap uv (pinned version) into .tools/
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv: $(VENV_STAMP) ## Sync .venv/ from uv.lock (dev group included)

$(VENV_STAMP): uv.lock pyproject.toml | $(UV)
	UV_PROJECT_ENVIRONMENT=.venv $(UV) sync --frozen
	touch $@

run: .venv ## Start Postgres+Redis under .data/, migrate, load a demo school, serve on 127.0.0.1:8000
	$(BIN)/messaging dev

test: .venv ## Install missing server packages (root on Debian), lint, then run pytest
	$(BIN)/python -m messaging.devservices --ensure-packages --with-test-servers
	npm ci --no-audit --no-fund
	$(MAKE) lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: .venv ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy messaging

fmt: .venv ## Format the code and apply ruff's automatic fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

screenshots: .venv ## Renew docs/screenshots/ (the web client in Chromium)
	npm ci --no-audit --no-fund
	MESSAGING_UPDATE_SCREENSHOTS=1 $(BIN)/pytest tests/web/test_screenshots.py

bench: .venv ## Run the load tests
	$(BIN)/python -m loadtests

bench-smoke: .venv ## Run a short load test (a quick check that the bench works)
	$(BIN)/python -m loadtests --smoke

clean: ## Remove .venv/ and .tools/
	rm -rf .venv .tools

distclean: clean ## WARNING: also deletes .data/ (the local database and Redis of 'make run')
	rm -rf .data
