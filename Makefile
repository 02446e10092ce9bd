# memsnap developer entry points.  `make demo` and `make test` work on a fresh Debian machine (as root).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= ./memsnap-store

.PHONY: setup apt-deps demo test bench bench-install recorder-pyz docs clean

$(BIN)/memsnap: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[analyze,test]'
	touch $@

setup: $(BIN)/memsnap

# The recorder as one file for production hosts: the plain install (pyarrow, typer; no numpy, duckdb,
# sqlalchemy or matplotlib) zipped by shiv.  Run it with a python3 of the version that built it (pyarrow
# is a binary wheel): `python3 dist/memsnap-recorder.pyz record STORE`.  On its first run it unpacks
# to ~/.shiv (or $SHIV_ROOT).  build/ goes first: setuptools puts whatever an earlier build left in
# build/lib into the wheel, deleted modules included.
PYZ := dist/memsnap-recorder.pyz
recorder-pyz: setup
	rm -rf build
	mkdir -p dist
	$(BIN)/shiv -q -c memsnap -p '/usr/bin/env python3' -o $(PYZ).tmp .
	mv $(PYZ).tmp $(PYZ)
	@ls -l $(PYZ)

# Debian packages the tests use, as command:package: smem (the peer we compare with), chromium (renders the
# HTML report) and a Java runtime for Spark (the `spark` tests run pyspark in local mode and on a standalone
# master and worker; any java on PATH will do, Spark 4 needs 17 or newer).
APT_PKGS := smem:smem chromium:chromium java:openjdk-17-jre-headless
# A failed install stops `make test` with an error: the tests that need them are the strongest oracles.
apt-deps:
	@missing=""; for cp in $(APT_PKGS); do command -v $${cp%%:*} >/dev/null || missing="$$missing $${cp#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  (command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	  || { echo "error: could not install$$missing (apt-get install$$missing); the smem peer, browser and Spark tests need them" >&2; exit 1; }; \
	  for cp in $(APT_PKGS); do command -v $${cp%%:*} >/dev/null || { echo "error: $${cp%%:*} is still not on PATH after apt-get install $${cp#*:}" >&2; exit 1; }; done; \
	fi

demo: setup
	$(BIN)/memsnap record --store $(STORE) --count 2 --interval 5
	$(BIN)/memsnap snapshots $(STORE)
	$(BIN)/memsnap sizes $(STORE) --sort pss --reverse --limit 25 --totals
	$(BIN)/memsnap sizes $(STORE) --by user --totals
	$(BIN)/memsnap diff $(STORE) --by command --sort pss_delta --reverse --min-change 100
	-$(BIN)/memsnap shared $(STORE) --groups command --limit 15
	$(BIN)/memsnap report $(STORE) -o memsnap-report.html

test: setup apt-deps
	$(BIN)/python -m pytest -q

bench: setup apt-deps
	$(BIN)/python bench/run.py

# Site-packages size of the plain (recorder) and the [analyze] install, and of the zipapp.
bench-install: setup
	$(BIN)/python bench/install_size.py

docs: setup
	$(BIN)/python -m schema.docs
	$(BIN)/python -m analyzer.sqldocs
	$(BIN)/python -m cli.help_text

clean:
	rm -rf $(VENV) build dist *.egg-info
