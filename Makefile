# Two commands do everything on a fresh Debian/Ubuntu machine:
#   make demo   installs tosac into .venv and runs the whole product on the bundled KWS model (MODEL=vww|ic|ad)
#   make test   installs tosac with its test, conformance and cluster extras and runs the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Cross toolchains and qemu for the ARM targets (Debian packages).
DEBS   := qemu-user gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
PYTEST_ARGS ?=

.PHONY: demo test test-full bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,conformance,cluster]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Installs the Debian packages that are missing (needs root; apt-get update first).
system-deps:
	@missing=""; \
	command -v qemu-aarch64 >/dev/null || missing="$$missing qemu-user"; \
	command -v aarch64-linux-gnu-gcc >/dev/null || missing="$$missing gcc-aarch64-linux-gnu"; \
	command -v arm-linux-gnueabihf-gcc >/dev/null || missing="$$missing gcc-arm-linux-gnueabihf"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing Debian packages:$$missing (run as root to install; ARM tests will skip)"; \
	  fi; \
	fi

MODEL ?= kws
demo: $(STAMP) system-deps
	$(VENV)/bin/tosac demo --model $(MODEL) --out-dir demo-out

test: $(STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# The full official conformance suite (integer profile) on every target (3,657 tests each; about 4 minutes per x86 target
# and 10-15 per ARM target under qemu, on 2 cores).
FULL_TARGETS ?= reference host x86_64 aarch64 aarch64-dotprod armv7
# The floating-point profile (5,672 tests; about 9-17 minutes on the host, 2 cores). Then every zoo network,
# ONNX and TFLite forms, on the host and (TFLite, against LiteRT) on AArch64 and ARMv7.
FP_TARGETS   ?= reference host
test-full: $(STAMP) system-deps
	for t in $(FULL_TARGETS); do \
	  $(VENV)/bin/tosac conformance tosa-cts --target $$t --json cts-$$t.json --junit cts-$$t.xml || exit 1; \
	done
	for t in $(FP_TARGETS); do \
	  $(VENV)/bin/tosac conformance tosa-cts --profile fp --target $$t --json cts-fp-$$t.json --junit cts-fp-$$t.xml || exit 1; \
	done
	TOSAC_SLOW_MODELS=1 $(PY) -m pytest tests/test_models_zoo.py tests/test_tflite_networks.py

# int8 kernels and the bundled models against numpy and ONNX Runtime (installs the 'bench' extra).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,conformance,cluster,bench]'
	$(PY) benchmarks/kernels.py --json bench-kernels.json
	$(PY) benchmarks/models.py --json bench-models.json

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis

# The fuzz suite at size (issue 16): FUZZ_EXAMPLES hostile inputs per category (8 categories) in FUZZ_JOBS worker
# processes; prints the table per category and writes every failing case to fuzz-failures/ (exit 1 if any).
FUZZ_EXAMPLES ?= 800
FUZZ_JOBS     ?= 2
.PHONY: fuzz
fuzz: $(STAMP)
	$(PY) benchmarks/fuzz_table.py --examples $(FUZZ_EXAMPLES) --jobs $(FUZZ_JOBS) --out fuzz-failures --json fuzz-table.json
