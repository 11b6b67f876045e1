# `make demo` and `make test` create .venv on first use and install what they need.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test fuzz lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "copytrail needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev,interop]'
	@touch $(STAMP)

demo: $(STAMP)
	bash examples/demo.sh

test: $(STAMP)
	$(VENV)/bin/ruff check copytrail tests bench examples
	$(VENV)/bin/pytest -q

# A long fuzzing run: many more hostile documents, archives, records and requests than `make test`.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest -q -p no:cacheprovider tests/test_fuzz.py

bench: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/audit.py
	$(VENV)/bin/python bench/guard.py
	$(VENV)/bin/python bench/build.py
	$(VENV)/bin/python bench/load.py

clean:
	rm -rf build .pytest_cache
