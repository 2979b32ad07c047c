# The two set-up commands of the README are `make demo` and `make test`;
# each creates the virtualenv and installs what it needs on first use, with the
# Python it finds (PYTHON, default python3: 3.10 or later).
# `make test` is exactly what CI runs (.ci/run): with that Python, in .venv, lint,
# typing, the docs build, the whole suite and the wheel check; then the oldest and
# the newest environments of tox.ini's version matrix, those whose Python is on
# the machine (pyenv's or PATH's), skipping the one the .venv run already was.
# The whole matrix (`make tox`) took 31 minutes on the 2-core machine, over CI's
# budget; see CONTRIBUTING.md. `make check` is the quick loop: ruff, mypy and
# pytest in .venv only.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
TOOLS_STAMP := $(VENV)/.tools-stamp
ENVS ?=
comma := ,
# The matrix environments `make test` adds, when their Python is on the machine.
MATRIX_ENVS ?= py310-flask23-marshmallow3 py313-flask31-marshmallow4

.PHONY: demo test check lint typecheck unit tox docs docs-serve config-docs dist dist-check clean \
	reliability-report bench

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# tox, the docs site and the release tools, in the same virtualenv.
$(TOOLS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,docs,release,ci]"
	touch $(TOOLS_STAMP)

# The benchmark's extras (gunicorn, matplotlib), in the same virtualenv.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(PY) -m examples.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	scripts/ensure-redis-server
	$(VENV)/bin/pytest -q

check: lint typecheck unit

test: $(TOOLS_STAMP)
	scripts/ensure-redis-server
	scripts/ensure-chromium
	@echo "== $$($(PY) --version) in $(VENV): ruff, mypy, docs, the suite, the wheel"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir build/site
	$(VENV)/bin/pytest -q -p no:cacheprovider
	$(MAKE) dist-check
	$(PY) scripts/test-matrix $(MATRIX_ENVS)

# Every environment of tox.ini's env_list (ENVS=py313-flask31-marshmallow4,lint for some),
# those whose Python is missing skipped; pyenv's Pythons are found as in `make test`.
tox: $(TOOLS_STAMP)
	scripts/ensure-redis-server
	$(PY) scripts/test-matrix --all $(if $(ENVS),$(subst $(comma), ,$(ENVS)),$(shell $(PY) -c "import configparser; c = configparser.ConfigParser(); c.read('tox.ini'); print(' '.join(c['tox']['env_list'].split()))"))

docs: $(TOOLS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(TOOLS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# Runs the fault scenarios and the hostile-input tests, writes their figures to
# build/reliability.json and renders them into the table of docs/reliability.md.
reliability-report: $(STAMP)
	scripts/ensure-redis-server
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/reliability tests/test_hostile_input.py \
		--reliability-report=build/reliability.json
	$(PY) scripts/reliability-report build/reliability.json docs/reliability.md

# Rewrites the option tables of docs/configuration.md from config.OPTIONS.
config-docs: $(STAMP)
	$(PY) -m flask_autotask_ilert.config_reference --write

# sdist and wheel in dist/, checked by twine.
dist: $(TOOLS_STAMP)
	rm -rf dist
	$(PY) -m build --quiet --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# Installs the wheel into a fresh virtualenv, away from the source tree, and runs the demo from it.
dist-check: dist
	scripts/check-dist dist $(PYTHON)

# The performance benchmark (docs/performance.md, about ten minutes; BENCH_ARGS=--smoke for
# a few seconds). It starts its own redis-server and servers on loopback; wrk drives the
# saturation runs when Debian's package can be installed, a Python client otherwise.
BENCH_ARGS ?=
bench: $(BENCH_STAMP)
	scripts/ensure-redis-server
	scripts/ensure-wrk
	$(PY) -m bench $(BENCH_ARGS)

# Mutation testing of the core modules with mutmut (docs/reliability.md#mutation-score): the
# modules are setup.cfg's [mutmut] only_mutate, the tests its fast in-process ones. About 7.5
# minutes on two quiet cores (2,359 mutants); not part of `make test`. Exits non-zero on a survivor not listed in
# tests/mutation/equivalent.txt or a module under 90% killed.
.PHONY: mutate
MUTATE_STAMP := $(VENV)/.mutate-stamp
$(MUTATE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,mutate]"
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	scripts/ensure-redis-server
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2
	$(PY) scripts/mutation-report

clean:
	rm -rf $(VENV) build dist site .tox *.egg-info .pytest_cache .mypy_cache .ruff_cache mutants
