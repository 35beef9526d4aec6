# django-stomp-push: one command to run the demo, one to run every test.
#   make demo   install everything, migrate, create the demo users, run the demo on http://127.0.0.1:8000
#   make test   install everything (Python, npm, Debian's redis-server and chromium), run the whole suite

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test setup system-deps docs bench bench-smoke lint clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

system-deps:
	scripts/system-deps.sh

demo: setup
	cd testproject && ../$(PY) manage.py migrate --noinput
	cd testproject && ../$(PY) manage.py demo_users
	cd testproject && ../$(PY) manage.py runserver 127.0.0.1:8000

test: setup system-deps
	$(PY) -m ruff check .
	$(PY) -m mkdocs build --strict --quiet
	$(PY) -m pytest $(PYTEST_ARGS)

docs: $(VENV)/.installed
	$(PY) -m mkdocs build --strict

bench: setup system-deps
	$(PY) -m bench

bench-smoke: setup system-deps
	$(PY) -m bench --smoke

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Also what the demo, the tests and the benchmarks leave behind. bench/results/ holds the git worktrees of
# `bench --baseline REV`: removing their folders and then `git worktree prune` unregisters them.
clean:
	rm -rf $(VENV) node_modules site test-artifacts .pytest_cache .hypothesis .ruff_cache build dist *.egg-info
	rm -rf testproject/db.sqlite3 testproject/db.sqlite3-journal bench/results
	-git worktree prune
