# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test lint bench bench-pdf bench-nodes browser syspkgs postfix postgresql clean fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(STAMP)

# Debian's Chromium for the admin-page browser test (Playwright drives it by
# executable_path; it never downloads a browser of its own).
# fonts-ipafont-gothic renders the Japanese UI in screenshots.
BROWSER_PKGS := chromium fonts-ipafont-gothic

browser:
	@if command -v chromium >/dev/null 2>&1 && [ -d /usr/share/fonts/opentype/ipafont-gothic ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS) >/dev/null; \
	else echo "chromium missing: sudo apt-get install $(BROWSER_PKGS) (browser tests will be skipped)"; fi

# Debian's Postfix and swaks for tests/e2e/test_postfix.py (a private Postfix
# instance per test run; the system-wide Postfix is never configured or started:
# debconf "No configuration" leaves /etc/postfix/main.cf absent).
POSTFIX_PKGS := postfix swaks

postfix:
	@if command -v postfix >/dev/null 2>&1 && command -v swaks >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(POSTFIX_PKGS) >/dev/null \
	    || echo "could not install $(POSTFIX_PKGS) (Postfix tests will be skipped)"; \
	else echo "postfix missing: sudo apt-get install $(POSTFIX_PKGS) (Postfix tests will be skipped)"; fi

# Debian's PostgreSQL server for the several-nodes tests (tests/pgcluster.py starts a
# private throwaway cluster per run as the postgres user; the system's cluster that the
# package may create is never used, and is stopped if the package started it).
PG_PKGS := postgresql

postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PG_PKGS) >/dev/null \
	    && { pg_lsclusters -h 2>/dev/null | while read v c rest; do pg_ctlcluster $$v $$c stop 2>/dev/null; done; true; } \
	    || echo "could not install $(PG_PKGS) (PostgreSQL tests will be skipped)"; \
	else echo "postgresql missing: sudo apt-get install $(PG_PKGS) (PostgreSQL tests will be skipped)"; fi

# Debian's libarchive (rar, lzh, cab through libarchive-c); without it those archives
# are held as unsupported_format.
SYS_PKGS := libarchive13

syspkgs:
	@if ldconfig -p 2>/dev/null | grep -q 'libarchive\.so\.13'; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYS_PKGS) >/dev/null; \
	else echo "libarchive missing: sudo apt-get install $(SYS_PKGS) (rar/lzh tests will be skipped)"; fi

run: $(STAMP)
	$(BIN)/dlp-gateway serve --upstream maildir:./data/maildir

lint: $(TSTAMP)
	$(BIN)/ruff check dlp_gateway tests bench

test: $(TSTAMP) browser syspkgs postfix postgresql
	$(BIN)/ruff check dlp_gateway tests bench
	$(BIN)/dlp-gateway patterns check
	$(BIN)/dlp-gateway patterns test > /dev/null || $(BIN)/dlp-gateway patterns test
	$(BIN)/python -m pytest -q

# Big generated sweeps (not part of `make test`): 20,000 generated tables and mails and
# the other fuzz-marked sweeps (DLP_FUZZ=1), then random edits of the patterns files.
fuzz: $(TSTAMP)
	DLP_FUZZ=1 $(BIN)/python -m pytest -q -m fuzz
	DLP_FUZZ_N=2000 $(BIN)/python -m pytest -q tests/test_patterns_check.py -k random
	DLP_FUZZ_N=20000 $(BIN)/python -m pytest -q tests/test_routing.py tests/test_evidence.py -k "random_organisations or masked_cell"
	DLP_FUZZ_N=5000 $(BIN)/python -m pytest -q tests/test_name_anchors.py -k records_do_not
	DLP_FUZZ_N=2000 $(BIN)/python -m pytest -q tests/test_data_reader.py

# Refresh the admin-page screenshots in docs/ from the browser test.
screenshots: $(TSTAMP) browser
	DLP_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/e2e/test_browser_departments.py

bench: $(STAMP)
	$(BIN)/python bench/scan_bench.py
	$(BIN)/python bench/relay_bench.py
	$(BIN)/python bench/startup_bench.py
	$(BIN)/python bench/postfix_bench.py

# One node on SQLite, one and two nodes on a private PostgreSQL (bench/nodes_bench.py).
bench-nodes: $(TSTAMP) postgresql
	$(BIN)/python bench/nodes_bench.py

bench-pdf: $(TSTAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python bench/pdf_bench.py

clean:
	rm -rf $(VENV) data .pytest_cache
