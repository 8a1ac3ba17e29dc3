# Two entry points for a fresh machine: `make run` and `make test`.
# Each creates the virtual environment in .venv on first use and reinstalls
# only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium
# root on CI and in containers; elsewhere apt-get needs sudo
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

# Runs the daemon on its embedded defaults: SQLite and a Maildir outbox under var/,
# the sample dumps copied into seeds/, and a demo subscriber.
run: $(STAMP)
	$(BIN)/python -m digestd.quickstart
	$(BIN)/digestd run

# The browser tests drive Debian's chromium through Playwright (never `playwright install`:
# its own browser download is not used). Installed here when missing, so a fresh machine
# runs them instead of failing.
$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

chromium: $(CHROMIUM)

test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check digestd tests benchmarks

clean:
	rm -rf $(VENV) var seeds .pytest_cache
