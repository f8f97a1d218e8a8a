# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format openapi migrate clean system-deps bench lock

# Runtime packages at requirements.lock's versions, as the image has them; dev tools unpinned.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c requirements.lock
	touch $(STAMP)

## Start the service with an embedded PostgreSQL (unless XIAOPU_DATABASE_URL is set) and demo data.
run: $(STAMP)
	$(BIN)/xiaopu dev

## Debian packages the tests use (Chromium renders the share landing page and drives the
## storefront; the Noto CJK fonts let it draw Chinese); skipped with a note where they cannot be
## installed.
system-deps:
	@{ command -v chromium >/dev/null 2>&1 && dpkg -s fonts-noto-cjk >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk) \
	      || echo "note: could not install chromium; its tests will be skipped"; \
	  else echo "note: chromium or fonts-noto-cjk missing and not installable here; browser tests may be skipped"; fi; }

## Lint, type-check and run every test on a real PostgreSQL (found or started by the tests).
test: $(STAMP) system-deps
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Regenerate openapi/openapi.json from the app.
openapi: $(STAMP)
	$(BIN)/xiaopu openapi

## Benchmarks (see bench/README.md).
bench: $(STAMP)
	$(BIN)/python bench/redirect.py
	$(BIN)/python bench/checkout.py
	$(BIN)/python bench/completion.py
	$(BIN)/python bench/expiry.py
	$(BIN)/python bench/revocation.py
	$(BIN)/python bench/storefront.py

## Rewrite requirements.lock (what the image installs) from this environment's runtime packages.
lock: $(STAMP)
	$(BIN)/python scripts/lock.py

migrate: $(STAMP)
	$(BIN)/xiaopu migrate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
