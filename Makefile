# The two commands of the README: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
BIN := $(VENV)/bin

# requirements*.txt are locks (every package pinned, with hashes) compiled from requirements*.in
# by `make lock`, which needs uv from the network and only re-locks; `make lock UPGRADE=--upgrade`
# moves every pin to the newest release the .in files allow.
UV_VERSION ?= 0.13.9
LOCK_VENV := $(VENV)/lock-tools
LOCK_FLAGS = --quiet --generate-hashes --universal --python-version $(shell cat .python-version) \
	--custom-compile-command "make lock" $(UPGRADE)

.PHONY: run test bench bench-tools clean lock audit

# Python 3.11+ (the locks and the code need it): an older one stops here, before any venv is made.
NEED_PYTHON = import sys; sys.exit(None if sys.version_info >= (3, 11) else "The kit needs Python \
	3.11 or newer; $(PYTHON) is %d.%d. Install 3.11+, then: make PYTHON=python3.11 ..." \
	% sys.version_info[:2])

# Each step leaves its marker only when it succeeded: a failed first try is started again
# (--clear) by the next make, never left half built.
$(VENV)/.created:
	@$(PYTHON) -c '$(NEED_PYTHON)'
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	touch $@

$(VENV)/.installed: requirements.txt $(VENV)/.created
	@echo "Installing the locked requirements into $(VENV) (a minute or two the first time)"
	$(BIN)/pip install --require-hashes -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt $(VENV)/.installed
	@echo "Installing the test requirements into $(VENV)"
	$(BIN)/pip install --require-hashes -r requirements-test.txt
	touch $@

run: $(VENV)/.installed
	PORT=$(PORT) $(BIN)/python -m server

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Known vulnerabilities in the locks (needs a vulnerability service; CI runs it after the tests).
audit: $(VENV)/.installed-test
	$(BIN)/python .ci/audit.py $(AUDIT_ARGS) requirements-test.txt

lock:
	test -x $(LOCK_VENV)/bin/uv || { $(PYTHON) -m venv $(LOCK_VENV) \
		&& $(LOCK_VENV)/bin/pip install --quiet uv==$(UV_VERSION); }
	$(LOCK_VENV)/bin/uv pip compile requirements.in $(LOCK_FLAGS) -o requirements.txt
	$(LOCK_VENV)/bin/uv pip compile requirements-test.in $(LOCK_FLAGS) -o requirements-test.txt

# The quick benchmarks, one after another (bench/README.md; memory.py takes 20 minutes: run it
# alone). They drive the server with wrk, which `make bench-tools` installs.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/floors.py
	$(BIN)/python bench/translation.py
	$(BIN)/python bench/language_accuracy.py

bench-tools:
	@command -v wrk >/dev/null && echo "wrk is installed: $$(command -v wrk)" || \
	{ command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y wrk; } || \
	{ echo "Install wrk with your package manager (Debian/Ubuntu: sudo apt-get install wrk;" \
	"macOS: brew install wrk)"; exit 1; }

# instance/ is kept: it holds the log store (instance/events.sqlite3), the data, not a build.
clean:
	rm -rf $(VENV) .pytest_cache
