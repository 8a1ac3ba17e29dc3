# Two entry points for a fresh machine: `make run` and `make test`.
# Each creates the virtual environment in .venv on first use and reinstalls
# only when pyproject.toml or what setup.py builds changes (the C query evaluator).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium
# root on CI and in containers; elsewhere apt-get needs sudo
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-all lint bench clean chromium debs

$(STAMP): pyproject.toml setup.py $(wildcard digestd/topics/*.c digestd/topics/*.h)
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

# The integration tests drive real programs from Debian: a browser, an MTA, a spam filter,
# a feed reader, an IMAP server and nginx (the README's configuration in front of the feeds).
# Installed here when missing, the same way as chromium; postfix is preseeded so that its
# installer asks nothing and configures no delivery, and the system's own dovecot and nginx
# are stopped again (tests run their own instances, on loopback).
DEB_PROGRAMS := chromium:/usr/bin/chromium postfix:/usr/sbin/postfix \
	spamassassin:/usr/bin/spamassassin newsboat:/usr/bin/newsboat \
	dovecot-imapd:/usr/sbin/dovecot nginx-light:/usr/sbin/nginx
debs:
	@missing=""; for p in $(DEB_PROGRAMS); do [ -x "$${p#*:}" ] || missing="$$missing $${p%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  if command -v systemctl >/dev/null; then \
	    $(SUDO) systemctl disable --now dovecot nginx 2>/dev/null || true; fi; \
	fi

# Tests run in parallel, one process per CPU (pytest-xdist; JOBS=0 runs them in this one).
# Tests marked xdist_group share a process: their modules write the same files.
JOBS ?= auto
XDIST := -n $(JOBS) --dist loadgroup

# The quick suite: everything but the tests marked slow (real MTAs, crash loops, big batches).
test: $(STAMP) debs
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS)

# The whole suite, slow integration tests included; CI runs this.
test-all: $(STAMP) debs
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check digestd tests benchmarks

clean:
	rm -rf $(VENV) var seeds .pytest_cache build dist
