# bpfbox developer entry points.  `make setup` installs everything a fresh Debian machine
# needs; `make test` runs the host suites and then the kernel suite inside a VM.
PYTHON ?= python3
# This checkout is the `bpfbox` package for everything make runs (tools/pythonpath/bpfbox).
export PYTHONPATH := $(CURDIR)/tools/pythonpath$(if $(PYTHONPATH),:$(PYTHONPATH))
PYTEST ?= $(PYTHON) -m pytest
# The kernels `make test-vm` runs the VM suite on (tests/vm/kernels.py): Debian 12's 6.1 and
# bookworm-backports' 6.12 (fetched into build/kernels); `make test KERNELS=6.1` for one.
KERNELS ?= 6.1 6.12

.PHONY: setup setup-apt setup-py check test test-host test-vm kernels golden lint format demo bench bench-scale fuzz

setup: setup-apt setup-py

setup-apt:
	@command -v apt-get >/dev/null || { echo "make setup: apt-get not found; install clang, libbpf-dev, bpftool, qemu-system-x86 and linux-image-amd64 by hand"; exit 2; }
	@if ! dpkg -s clang llvm libbpf-dev libbpf1 bpftool qemu-system-x86 linux-image-amd64 busybox-static >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			clang llvm libbpf-dev libbpf1 bpftool qemu-system-x86 linux-image-amd64 busybox-static; \
	fi

setup-py:
	$(PYTHON) -m pip install -q -e '.[dev]'

# The host-side gate: formatting, lint, types, host tests and goldens; no VM.  `make test`
# runs it first: cheap, and a red check needs no VM to say so.
check: lint test-host

test: setup check test-vm

test-host:
	$(PYTEST) -q -m "not vm" tests

# Each kernel boots once per group of tests (tests/vm/matrix.py); results under build/vm-results.
test-vm: kernels
	$(PYTHON) tests/e2e/prepare.py
	$(PYTHON) tests/vm/matrix.py $(KERNELS)

# Debian kernels beyond the installed one, unpacked under build/kernels (apt sources untouched).
kernels:
	$(PYTHON) tests/vm/kernels.py fetch $(KERNELS)

demo: setup
	$(PYTHON) examples/demo.py

# bpfbox beside AppArmor (booted in as an extra LSM) and Landlock, one boot; the table is
# printed, build/bench/bench.json and its plot build/bench/bench.svg are written.
bench: setup
	@command -v apparmor_parser >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q apparmor
	$(PYTHON) tests/e2e/prepare.py
	$(PYTHON) tests/vm/run_in_vm.py --lsm-extra apparmor --results build/bench -- \
		$(PYTHON) tests/e2e/bench.py run
	$(PYTHON) tests/e2e/bench.py plot build/bench/bench.json

# Compile and load policies of 2 to 10,000 generated rules (docs/performance.md).
bench-scale: setup
	$(PYTHON) tests/e2e/prepare.py
	$(PYTHON) tests/e2e/bench_scale.py compile
	$(PYTHON) tests/vm/run_in_vm.py -- $(PYTHON) tests/e2e/bench_scale.py load

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
	$(PYTHON) tools/typecheck.py

format:
	$(PYTHON) -m black .
	$(PYTHON) -m ruff check --fix .
