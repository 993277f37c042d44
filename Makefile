# bpfbox developer entry points.  `make setup` installs everything a fresh Debian machine
# needs; `make test` runs the host suites and then the kernel suite inside a VM.
PYTHON ?= python3
# This checkout is the `bpfbox` package for everything make runs (tools/pythonpath/bpfbox).
export PYTHONPATH := $(CURDIR)/tools/pythonpath$(if $(PYTHONPATH),:$(PYTHONPATH))
PYTEST ?= $(PYTHON) -m pytest

.PHONY: setup setup-apt setup-py test test-host test-vm golden lint format demo bench fuzz

setup: setup-apt setup-py

setup-apt:
	@command -v apt-get >/dev/null || { echo "make setup: apt-get not found; install clang, libbpf-dev, bpftool, qemu-system-x86 and linux-image-amd64 by hand"; exit 2; }
	@if ! dpkg -s clang llvm libbpf-dev libbpf1 bpftool qemu-system-x86 linux-image-amd64 busybox-static >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			clang llvm libbpf-dev libbpf1 bpftool qemu-system-x86 linux-image-amd64 busybox-static; \
	fi

setup-py:
	$(PYTHON) -m pip install -q -e '.[dev]'

test: setup test-host test-vm

test-host:
	$(PYTEST) -q -m "not vm" tests

test-vm:
	$(PYTHON) tests/e2e/prepare.py
	$(PYTHON) tests/vm/run_in_vm.py -- $(PYTHON) -m pytest -q -p no:cacheprovider -m "vm and not vm_nobpf" tests/e2e
	$(PYTHON) tests/vm/run_in_vm.py --no-bpf-lsm -- $(PYTHON) -m pytest -q -p no:cacheprovider -m vm_nobpf tests/e2e

demo: setup
	$(PYTHON) examples/demo.py

bench: setup
	$(PYTHON) tests/e2e/prepare.py
	$(PYTHON) tests/vm/run_in_vm.py -- $(PYTHON) tests/e2e/bench.py

# The fuzzer at a large budget (make test-host runs it at a small one); FUZZ_SEED=N picks
# another reproducible sequence of inputs.
FUZZ_INPUTS ?= 100000
fuzz:
	FUZZ_INPUTS=$(FUZZ_INPUTS) $(PYTEST) -q -s -p no:cacheprovider tests/fuzz

golden:
	$(PYTEST) -q tests/golden --update-golden

lint:
	$(PYTHON) -m black --check .
	$(PYTHON) -m ruff check .

format:
	$(PYTHON) -m black .
	$(PYTHON) -m ruff check --fix .
