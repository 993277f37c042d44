#!/usr/bin/env python3
"""Build what the kernel tests need, on the host, before the VM boots.

Compiling C is about 75 times slower under the VM's software emulation than here, so the
programs the tests confine and every policy in tests/e2e/policies are built now:

    build/e2e/root/mnt/e2e/...       the programs, where the VM will find them under /mnt/e2e
    build/e2e/policies/NAME.bpf.c    bpfboxc's output (with --sysroot build/e2e/root)
    build/e2e/policies/NAME.bpf.o    clang's

In the VM, the session fixture mounts a tmpfs on /mnt and copies root/mnt/e2e into it, so the
paths in the policies are the real paths there.  Usage: prepare.py [OUTDIR]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import bench
import many_rules
from bpfbox.runtime.build import CLANG_FLAGS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
#: Where the VM sees the tests' files; the policies name paths under it.
E2E = "/mnt/e2e"
CLANG = ["clang", *CLANG_FLAGS, "-Werror"]
#: The probe under several names: profile programs, exec targets, signal and ptrace targets.
PROBE_COPIES = ("probe", "probe-other", "helper", "target", "target2", "outsider")
#: The bench program under the names `make bench` confines by other means than bpfbox's
#: `bench` profile (bench.py: each AppArmor profile attaches to its own program).
BENCH_COPIES = ("bench-outsider", "bench-aa", "bench-aa-many")


def run(*command: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in command], check=True, cwd=cwd)


def build_programs(root: Path) -> None:
    bin_dir, lib_dir = root / "bin", root / "lib"
    bin_dir.mkdir(parents=True, exist_ok=True)
    lib_dir.mkdir(parents=True, exist_ok=True)
    probe = bin_dir / "probe"
    run("gcc", "-O1", "-Wall", "-pthread", "-o", probe, HERE / "probe.c")
    for name in PROBE_COPIES[1:]:
        shutil.copy2(probe, bin_dir / name)
    run(
        "gcc",
        "-O1",
        "-Wall",
        "-shared",
        "-fPIC",
        "-o",
        lib_dir / "libe2e.so",
        HERE / "programs" / "libe2e.c",
    )
    for variant, flags in (("pie", ["-fPIE", "-pie"]), ("nopie", ["-fno-pie", "-no-pie"])):
        run(
            "gcc",
            "-O1",
            "-Wall",
            "-pthread",
            *flags,
            "-o",
            bin_dir / f"funcs-{variant}",
            HERE / "programs" / "funcs.c",
            f"-L{lib_dir}",
            "-le2e",
            f"-Wl,-rpath,{E2E}/lib",
        )
    # Frame pointers, as docs/writing-policies.md says: learning runs attribute accesses to
    # functions by the user stack (tests/e2e/test_learn.py).
    run(
        "gcc",
        "-O1",
        "-fno-omit-frame-pointer",
        "-Wall",
        "-o",
        bin_dir / "mylogin",
        REPO / "examples" / "mylogin.c",
    )
    run("gcc", "-O2", "-Wall", "-o", bin_dir / "bench", HERE / "programs" / "bench.c")
    for name in BENCH_COPIES:
        shutil.copy2(bin_dir / "bench", bin_dir / name)
    run(
        "gcc", "-O2", "-Wall", "-static", "-o", bin_dir / "nothing", HERE / "programs" / "nothing.c"
    )
    run("gcc", "-O2", "-Wall", "-o", bin_dir / "landlock-run", HERE / "programs" / "landlock_run.c")


def link_system_programs(sysroot: Path) -> None:
    """Policies may profile system programs (cat): the sysroot shows the real ones."""
    target = sysroot / "usr" / "bin" / "cat"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to("/usr/bin/cat")


#: The generated many-rule policies test_scale.py loads: their numbers of rules.
MANY_RULES = (1000, 10000)


def compile_policies(sysroot: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    generated = out / "generated"
    generated.mkdir(exist_ok=True)
    for count in MANY_RULES:
        source = generated / f"many{count}.bpfbox"
        source.write_text(many_rules.policy(count, root=f"{E2E}/data"))
    branching = many_rules.branching(many_rules.BRANCHING_RULES, root=f"{E2E}/data")
    (generated / "branching.bpfbox").write_text(branching)
    for name, source in bench.BPFBOX_POLICIES.items():
        (generated / f"{name}.bpfbox").write_text(source)
    policies = sorted((HERE / "policies").glob("*.bpfbox")) + sorted(generated.glob("*.bpfbox"))
    for policy in policies:
        c_file = out / f"{policy.stem}.bpf.c"
        run(sys.executable, "-m", "bpfbox.compiler", policy, "-o", c_file, "--sysroot", sysroot)
        run(*CLANG, "-c", c_file, "-o", c_file.with_suffix("").with_suffix(".bpf.o"))


def build_variants(policies: Path) -> None:
    """lifetime.bpf.o with a wider task state (as a future layout could have): a replacement
    the runtime must refuse.  The contract's size assertion goes with the widening."""
    variants = policies / "variants"
    variants.mkdir(exist_ok=True)
    source = (policies / "lifetime.bpf.c").read_text()
    widened = re.sub(
        r"struct task_state \{\n", "struct task_state {\n\t__u64 future_field;\n", source, count=1
    )
    widened = re.sub(r"_Static_assert\(sizeof\(struct task_state\)[^\n]*\n", "", widened, count=1)
    assert widened.count("future_field") == 1 and widened != source, "task_state not found"
    wider = variants / "lifetime.bpf.c"
    wider.write_text(widened)
    run(*CLANG, "-c", wider, "-o", variants / "lifetime.bpf.o")


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build" / "e2e").resolve()
    sysroot = out / "root"
    shutil.rmtree(sysroot, ignore_errors=True)
    build_programs(sysroot / E2E.lstrip("/"))
    link_system_programs(sysroot)
    compile_policies(sysroot, out / "policies")
    build_variants(out / "policies")
    # The demo's program and policy, for test_demo.py (the demo builds into build/demo).
    run(sys.executable, REPO / "examples" / "demo.py", "--prepare")
    print(f"prepare: programs and policies built under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
