# django-stomp-push: one command to run the demo, one to run every test.
#   make demo   install everything, migrate, create the demo users, run the demo on http://127.0.0.1:8000
#   make test   install everything (Python, npm, Debian's redis-server and chromium), run the whole suite
#   make lint   ruff check, ruff format --check and mypy --strict (make typecheck alone)
#   make dist-check   build the sdist and the wheel into dist/, twine check them and check what the wheel holds
#   make matrix the oldest and the newest supported versions, each in its own venv (scripts/matrix.sh)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

MATRIX_VENVS := $(VENV)-oldest $(VENV)-newest

.PHONY: demo test setup system-deps docs bench bench-smoke lint typecheck dist-check matrix clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,dev]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

system-deps:
	scripts/system-deps.sh

demo: setup
	cd testproject && ../$(PY) manage.py migrate --noinput
	cd testproject && ../$(PY) manage.py demo_users
	# daphne with a listen backlog through its endpoint string (runserver cannot set one): docs/deployment.md
	cd testproject && ../$(PY) -m daphne -e tcp:port=8000:interface=127.0.0.1:backlog=1024 testproject.asgi:application

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
	$(PY) -m mypy

# mypy --strict on the package: its configuration and the untyped libraries it leaves as Any are in pyproject.toml.
typecheck: $(VENV)/.installed
	$(PY) -m mypy

# What `pip install django-stomp-push` would get: both builds pass `twine check --strict`, and the wheel holds
# every file of the package (the static clients among them) and nothing else (scripts/check_dist.py).
dist-check: $(VENV)/.installed
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*
	$(PY) scripts/check_dist.py dist

# The oldest and the newest supported Python, Django, channels, daphne and channels-redis, beside the main leg
# (.venv): unit, multi-server and daphne tests, with mandatory tests mandatory (STOMP_PUSH_REQUIRE_ALL=1).
matrix: system-deps
	scripts/matrix.sh

# Also what the demo, the tests and the benchmarks leave behind. bench/results/ holds the git worktrees of
# `bench --baseline REV`: removing their folders and then `git worktree prune` unregisters them.
clean:
	rm -rf $(VENV) $(MATRIX_VENVS) node_modules site test-artifacts .pytest_cache .hypothesis .ruff_cache .mypy_cache
	rm -rf build dist *.egg-info
	rm -rf testproject/db.sqlite3 testproject/db.sqlite3-journal bench/results
	-git worktree prune
