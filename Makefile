# memsnap developer entry points.  `make demo` and `make test` work on a fresh Debian machine (as root).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= ./memsnap-store

.PHONY: setup apt-deps spark-s3a-jars demo test bench bench-install recorder-pyz docs clean

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

# Hadoop's S3A filesystem, for `memsnap --engine spark` over a store on S3 (s3a://): the pyspark wheel has no
# hadoop-aws, and these machines reach PyPI but no Maven repository.  AWS's sagemaker-pyspark source package on
# PyPI carries hadoop-aws 3.3.1 and the AWS SDK bundle it was built with (Apache 2.0); both jars are taken out
# of it, checked against the hashes below, into $(S3A_DIR).  They work with pyspark 4's Hadoop 3.5 client given
# the settings analyzer/spark.py's s3a_conf sets (docs/fleet.md).  Use them with
# MEMSNAP_SPARK_JARS=$(S3A_DIR)/hadoop-aws-3.3.1.jar,$(S3A_DIR)/aws-java-sdk-bundle-1.11.901.jar (tests find
# them here by themselves).  A Spark deployment of your own has its hadoop-aws already: use that.
S3A_DIR := .cache/spark-jars
S3A_SDIST := sagemaker_pyspark-1.4.5
$(S3A_DIR)/SHA256SUMS: $(BIN)/memsnap
	rm -rf $(S3A_DIR) && mkdir -p $(S3A_DIR)/dl
	$(BIN)/pip download -q --no-deps --no-build-isolation -d $(S3A_DIR)/dl sagemaker-pyspark==1.4.5
	tar -xzf $(S3A_DIR)/dl/$(S3A_SDIST).tar.gz -C $(S3A_DIR) --strip-components=3 \
	  $(S3A_SDIST)/deps/jars/hadoop-aws-3.3.1.jar $(S3A_SDIST)/deps/jars/aws-java-sdk-bundle-1.11.901.jar
	rm -rf $(S3A_DIR)/dl
	printf '%s\n' '6be50ad8a8b445d2802381b085b2a3ede5c29d353450a6a21f16b2fefa962b6e  hadoop-aws-3.3.1.jar' \
	  'b87175b32a16544cc1b37cf40390eb375833e62bed67f8ce6cde4b7ad6429ead  aws-java-sdk-bundle-1.11.901.jar' \
	  > $(S3A_DIR)/SHA256SUMS.tmp
	cd $(S3A_DIR) && sha256sum -c --quiet SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS
spark-s3a-jars: $(S3A_DIR)/SHA256SUMS

demo: setup
	$(BIN)/memsnap record --store $(STORE) --count 2 --interval 5
	$(BIN)/memsnap snapshots $(STORE)
	$(BIN)/memsnap sizes $(STORE) --sort pss --reverse --limit 25 --totals
	$(BIN)/memsnap sizes $(STORE) --by user --totals
	$(BIN)/memsnap diff $(STORE) --by command --sort pss_delta --reverse --min-change 100
	-$(BIN)/memsnap shared $(STORE) --groups command --limit 15
	$(BIN)/memsnap report $(STORE) -o memsnap-report.html

test: setup apt-deps spark-s3a-jars
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
