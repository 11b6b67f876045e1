# `make demo` and `make test` create .venv on first use and install what they need.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "copytrail needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	bash examples/demo.sh

test: $(STAMP)
	$(VENV)/bin/ruff check copytrail tests bench examples
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/audit.py
	$(VENV)/bin/python bench/guard.py
	$(VENV)/bin/python bench/build.py

clean:
	rm -rf build .pytest_cache
