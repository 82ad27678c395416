# Two entry points for a new user: `make demo` and `make test`.
# Each creates .venv (idempotently), installs everything, then runs its job.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint install constraints bench clean system-deps

$(BIN)/python:
	$(shell command -v $(PYTHON) >/dev/null 2>&1 && echo $(PYTHON) || echo python3) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned first so that no dependency pulls a multi-GB CUDA build; everything
# else installs at the exact versions the tests passed with (constraints.txt).
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# After a dependency change has passed `make test`: record the versions it passed with.
constraints: $(BIN)/python
	{ echo "# Exact versions the tests passed with; written by 'make constraints' (pip freeze)."; \
	  echo "# torch is pinned by the Makefile itself (its CPU build), the project is not listed."; \
	  $(BIN)/pip freeze --exclude-editable --exclude torch; } > constraints.txt

demo: $(STAMP) system-deps
	$(BIN)/polymodal demo

# Best effort: Debian's Chromium for the browser tests (they skip without it) and the
# Fashion-MNIST package for its dataset (its tests skip without it). Needs root or sudo.
system-deps:
	@if [ -x /usr/bin/chromium ] && [ -d /usr/share/doc/dataset-fashion-mnist ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "note: not root; skipping chromium and dataset-fashion-mnist (their tests will skip)"; exit 0; fi; \
	command -v apt-get >/dev/null 2>&1 || { echo "note: no apt-get; browser tests will skip"; exit 0; }; \
	$$SUDO apt-get update -qq >/dev/null && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium dataset-fashion-mnist >/dev/null \
	|| echo "note: could not install chromium/dataset-fashion-mnist; their tests will skip"

# One worker per core (at most 4), each test file on one worker so that its module-scoped
# fitted models are trained once.
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) demo-out
