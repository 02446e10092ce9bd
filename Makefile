# memsnap developer entry points.  `make demo` and `make test` work on a fresh Debian machine (as root).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= ./memsnap-store

.PHONY: setup demo test bench docs clean

$(BIN)/memsnap: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/memsnap

# smem is the peer the tests compare with (Debian package).
/usr/bin/smem:
	(command -v apt-get >/dev/null && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq smem >/dev/null)) || echo "warning: could not install smem; smem comparison tests will be skipped"

demo: setup
	$(BIN)/memsnap record --store $(STORE)
	$(BIN)/memsnap snapshots $(STORE)
	$(BIN)/memsnap sizes $(STORE) --sort pss --reverse --limit 25 --totals

test: setup /usr/bin/smem
	$(BIN)/python -m pytest -q

bench: setup /usr/bin/smem
	$(BIN)/python bench/run.py

docs: setup
	$(BIN)/python -m schema.docs
	$(BIN)/python -m analyzer.sqldocs

clean:
	rm -rf $(VENV) build dist *.egg-info
