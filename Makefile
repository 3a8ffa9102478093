# Two-command quick start: `make run` (offline default workflow) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CORES ?= 2

.PHONY: run report test lint clean-results

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

lint: $(STAMP)
	$(VENV)/bin/ruff check scripts tests
	$(VENV)/bin/snakefmt --check Snakefile workflow
	$(VENV)/bin/snakemake --lint --configfile config/offline.yaml

clean-results:
	rm -rf results
