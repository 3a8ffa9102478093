# Two-command quick start: `make run` (offline default workflow) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CORES ?= 2

DOCS_STAMP := $(VENV)/.docs-stamp

.PHONY: run report test lint docs clean-results

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/offline.yaml

# HTML report of the offline default's results (after `make run`)
report: $(STAMP)
	$(VENV)/bin/snakemake --report report.html --configfile config/offline.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check scripts tests
	$(VENV)/bin/snakefmt --check Snakefile workflow
	$(VENV)/bin/pytest

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $(DOCS_STAMP)

# the documentation site, offline, into docs/_build/html (warnings are errors; the tutorial runs)
docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

lint: $(STAMP)
	$(VENV)/bin/ruff check scripts tests
	$(VENV)/bin/snakefmt --check Snakefile workflow
	$(VENV)/bin/snakemake --lint --configfile config/offline.yaml

clean-results:
	rm -rf results
