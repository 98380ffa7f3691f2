# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test lint bench browser clean fuzz

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

run: $(STAMP)
	$(BIN)/dlp-gateway serve --upstream maildir:./data/maildir

lint: $(TSTAMP)
	$(BIN)/ruff check dlp_gateway tests bench

test: $(TSTAMP) browser
	$(BIN)/ruff check dlp_gateway tests bench
	$(BIN)/python -m pytest -q

# Generated sweeps at full size (make test runs bounded samples of the same tests):
# >= 20,000 fail-closed fuzz inputs. DLP_FUZZ_SEED=N picks the seed.
fuzz: $(TSTAMP)
	DLP_FUZZ=1 $(BIN)/python -m pytest -q -m fuzz

bench: $(STAMP)
	$(BIN)/python bench/scan_bench.py
	$(BIN)/python bench/relay_bench.py

clean:
	rm -rf $(VENV) data .pytest_cache
