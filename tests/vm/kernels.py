#!/usr/bin/env python3
"""The kernels the VM suite runs on: Debian's 6.1 (bookworm), 6.12 (bookworm-backports) and
7.3 (trixie-backports).

6.1 is the machine's own Debian kernel package, installed in /boot by `make setup`
(linux-image-amd64).  The others are fetched WITHOUT touching the machine's apt sources or its
boot kernel: a private apt configuration under build/kernels/apt (same Debian mirror and
signing keyring as the host's own sources) downloads the image package (and, for kernels
packaged since Debian split them, its linux-binary and linux-modules parts), which is unpacked
under build/kernels/SERIES/root.  virtme-ng loads the guest's 9p and overlay modules from
/lib/modules/RELEASE, so that one path is a link to the unpacked modules.

    python3 tests/vm/kernels.py fetch 6.12       # download and unpack (nothing if done already)
    python3 tests/vm/kernels.py fetch 7.3        # not in the default matrix: see KERNELS
    python3 tests/vm/kernels.py fetch --refresh 6.12   # the newest 6.12 backports build
    python3 tests/vm/kernels.py image 6.1        # the image path, for run_in_vm.py --kernel
    python3 tests/vm/kernels.py list
    python3 tests/vm/kernels.py hook-abi         # LSM hook prototypes that differ (BTF)

Exit status: 0; 2 for a usage error or a kernel that cannot be fetched or found.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BPFBOX_KERNELS", REPO / "build" / "kernels"))
#: Where this script's own sources line points when the host's apt sources name no Debian mirror.
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
HOST_SOURCES = Path("/etc/apt")
MODULES = Path("/lib/modules")
#: Written last by a fetch: its presence means the unpacked kernel is complete.
RELEASE_FILE = "release"
TEMPLATES = REPO / "codegen_templates"
#: Compressed payloads a bzImage may carry (CONFIG_KERNEL_*): magic and decompressor.
PAYLOADS = ((b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b\x08", "gzip"))


@dataclass(frozen=True)
class Kernel:
    """One kernel of the matrix: a version series and where Debian ships it."""

    series: str
    #: Debian suite serving it; None: the host's own kernel package in /boot.
    suite: str | None
    description: str


KERNELS = {
    k.series: k
    for k in (
        Kernel("6.1", None, "Debian 12 bookworm's kernel, installed in /boot by `make setup`"),
        Kernel("6.12", "bookworm-backports", "Debian 12 bookworm-backports (Debian 13's series)"),
        Kernel("7.3", "trixie-backports", "Debian 13 trixie-backports (the newest Debian ships)"),
    )
}
#: The kernels `make test` boots.  7.3 is fetched and run on demand (`make test-vm
#: KERNELS="6.1 6.12 7.3"`): a third kernel would take CI past its time.
DEFAULT = ("6.1", "6.12")


class KernelError(Exception):
    """A kernel could not be fetched or found; the message says what to do."""


def image(name: str) -> Path:
    """The bootable image for `name`: a series of the matrix (6.1, 6.12) or a release
    (6.12.95+deb12-amd64) of one; a fetched kernel must have been fetched already."""
    kernel = KERNELS.get(name) or next(
        (k for k in KERNELS.values() if name.startswith(k.series + ".")), None
    )
    if kernel is None:
        raise KernelError(f"unknown kernel {name!r}: choose one of {', '.join(KERNELS)}")
    if kernel.suite is None:
        path = _system_image(kernel)
        release = path.name.removeprefix("vmlinuz-")
    else:
        release = _fetched_release(kernel)
        if release is None:
            raise KernelError(
                f"kernel {kernel.series} is not fetched yet: "
                f"run `python3 tests/vm/kernels.py fetch {kernel.series}` (or `make kernels`)"
            )
        _link_modules(kernel, release)
        path = _root(kernel) / "boot" / f"vmlinuz-{release}"
    if name not in (kernel.series, release):
        raise KernelError(f"kernel {name} is not available: the {kernel.series} one is {release}")
    return path


def fetch(kernel: Kernel, refresh: bool = False) -> str:
    """Download and unpack `kernel` unless it is already; returns its release."""
    if kernel.suite is None:
        path = _system_image(kernel)
        print(f"kernels: {kernel.series}: {path} (Debian's linux-image-amd64)")
        return path.name.removeprefix("vmlinuz-")
    release = _fetched_release(kernel)
    if release is not None and not refresh:
        _link_modules(kernel, release)
        print(f"kernels: {kernel.series}: {release} already fetched")
        return release
    for tool in ("apt-get", "apt-cache", "dpkg-deb", "depmod"):
        if shutil.which(tool) is None:
            raise KernelError(f"{tool} not found: fetching kernels needs Debian's apt and kmod")
    apt = PrivateApt(CACHE / "apt", kernel.suite)
    apt.update()
    package = apt.image_package(kernel.series)
    newest = package.removeprefix("linux-image-")
    if newest == release:
        print(f"kernels: {kernel.series}: {release} is the newest")
        return release
    print(f"kernels: {kernel.series}: downloading {package} from {kernel.suite}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        staging = Path(work) / "root"
        for part in (package, *apt.split_parts(package, newest)):
            deb = apt.download(part, Path(work))
            _run(["dpkg-deb", "-x", str(deb), str(staging)], f"unpacking {deb.name}")
        _merged_layout(staging, newest)
        _run(["depmod", "-b", str(staging), newest], f"depmod for {newest}")
        shutil.rmtree(_dir(kernel), ignore_errors=True)
        _dir(kernel).mkdir(parents=True)
        staging.rename(_root(kernel))
    (_dir(kernel) / RELEASE_FILE).write_text(newest + "\n")
    _link_modules(kernel, newest)
    print(f"kernels: {kernel.series}: {newest} unpacked in {_root(kernel)}")
    return newest


class PrivateApt:
    """apt-get and apt-cache on a sources list and package lists of our own."""

    def __init__(self, directory: Path, suite: str) -> None:
        self.directory = directory
        self.suite = suite
        self.sources = directory / "sources.list.d"
        mirror, keyring = host_debian_mirror()
        self.sources.mkdir(parents=True, exist_ok=True)
        for sub in ("lists/partial", "cache/archives/partial"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (self.sources / "bpfbox-kernels.list").write_text(
            f"deb [signed-by={keyring}] {mirror} {suite} main\n"
        )

    def _options(self) -> list[str]:
        # The sandbox user `_apt` cannot read a private lists dir under root's checkout, and
        # without root apt then fails the signature check of what it downloaded.
        return [
            "-o", "APT::Sandbox::User=root",
            "-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={self.sources}",
            "-o", f"Dir::State::Lists={self.directory / 'lists'}",
            "-o", f"Dir::Cache={self.directory / 'cache'}",
        ]  # fmt: skip

    def update(self) -> None:
        _run(["apt-get", "-q", *self._options(), "update"], f"apt-get update of {self.suite}")

    def image_package(self, series: str) -> str:
        """The versioned image package linux-image-amd64 of `suite` depends on."""
        out = _run(
            ["apt-cache", *self._options(), "show", "linux-image-amd64"],
            "apt-cache show linux-image-amd64",
        )
        package = newest_image_package(out, series)
        if package is None:
            raise KernelError(f"{self.suite} offers no linux-image-amd64 of series {series}")
        return package

    def split_parts(self, package: str, release: str) -> list[str]:
        """The packages holding the image and the modules when `package` only depends on
        them (newer Debian kernel packages: linux-binary-RELEASE, linux-modules-RELEASE)."""
        out = _run(["apt-cache", *self._options(), "show", package], f"apt-cache show {package}")
        return split_parts(out, release)

    def download(self, package: str, directory: Path) -> Path:
        _run(
            ["apt-get", "-q", *self._options(), "download", package], "apt-get download", directory
        )
        debs = list(directory.glob(f"{package}_*.deb"))
        if len(debs) != 1:
            raise KernelError(f"apt-get download {package} left no single .deb in {directory}")
        return debs[0]


def newest_image_package(show: str, series: str) -> str | None:
    """From `apt-cache show linux-image-amd64`: the versioned image package of the newest
    version of `series` (Depends names it first in older packages, after linux-base-amd64 in
    newer ones)."""
    candidates = []
    for stanza in show.split("\n\n"):
        version = re.search(r"^Version: (\S+)", stanza, re.M)
        depends = re.search(r"^Depends:.*?\b(linux-image-[^\s,]+)", stanza, re.M)
        if version and depends and version[1].startswith(series + "."):
            candidates.append((version[1], depends[1]))
    if not candidates:
        return None
    return max(candidates, key=functools.cmp_to_key(_compare_versions))[1]


def split_parts(show: str, release: str) -> list[str]:
    """From `apt-cache show linux-image-RELEASE`: the linux-binary and linux-modules packages
    of `release` it depends on (none for a package that holds the kernel itself)."""
    depends = re.search(r"^Depends: (.*)$", show, re.M)
    pattern = rf"\blinux-(?:binary|modules)-{re.escape(release)}(?=[\s,]|$)"
    return sorted(set(re.findall(pattern, depends[1] if depends else "")))


def host_debian_mirror() -> tuple[str, str]:
    """The Debian mirror and keyring the host's own apt sources use for bookworm's `main`."""
    texts = []
    for path in [HOST_SOURCES / "sources.list", *sorted(HOST_SOURCES.glob("sources.list.d/*"))]:
        if path.suffix in (".list", ".sources") and path.is_file():
            texts.append(path.read_text())
    for text in texts:
        # deb822 stanzas: URIs/Suites/Signed-By fields.
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([\w-]+):\s*(.*)$", stanza, re.M))
            if "bookworm" in fields.get("Suites", "").split() and "URIs" in fields:
                return fields["URIs"].split()[0], fields.get("Signed-By", DEFAULT_KEYRING)
        # one-line sources: deb [options] URI SUITE COMPONENTS.
        for match in re.finditer(r"^deb\s+(?:\[(.*?)\]\s+)?(\S+)\s+bookworm\s", text, re.M):
            keyring = re.search(r"signed-by=(\S+)", match[1] or "")
            return match[2], keyring[1] if keyring else DEFAULT_KEYRING
    return DEFAULT_MIRROR, DEFAULT_KEYRING


def vmlinux(name: str) -> Path:
    """The ELF vmlinux (with its .BTF) inside the image of kernel `name`, extracted once into
    build/kernels/RELEASE.vmlinux: the BTF of a kernel this machine does not run."""
    image_path = image(name)
    out = CACHE / (image_path.name.removeprefix("vmlinuz-") + ".vmlinux")
    if out.is_file():
        return out
    data = image_path.read_bytes()
    for magic, tool in PAYLOADS:
        start = data.find(magic)
        while start >= 0:
            # Trailing bytes after the payload make the decompressor complain: judge by output.
            result = subprocess.run([tool, "-dc"], input=data[start:], capture_output=True)
            if result.stdout[:4] == b"\x7fELF":
                CACHE.mkdir(parents=True, exist_ok=True)
                out.write_bytes(result.stdout)
                return out
            start = data.find(magic, start + 1)
    raise KernelError(f"no xz, zstd or gzip compressed vmlinux found in {image_path}")


def lsm_hook_prototypes(name: str) -> dict[str, str]:
    """hook -> `ret (type name, ...)` for every bpf_lsm_<hook> in kernel `name`'s BTF."""
    out = _run(["bpftool", "-j", "btf", "dump", "file", str(vmlinux(name))], "bpftool btf dump")
    types = {t["id"]: t for t in json.loads(out)["types"]}

    def spell(type_id: int) -> str:
        if type_id == 0:
            return "void"
        t = types[type_id]
        kind = t["kind"]
        if kind in ("PTR", "CONST", "VOLATILE", "RESTRICT", "ARRAY"):
            inner = spell(t["type_id"])
            return {"PTR": f"{inner} *", "ARRAY": f"{inner}[]"}.get(kind, f"{kind.lower()} {inner}")
        prefix = {"STRUCT": "struct ", "UNION": "union ", "ENUM": "enum ", "FWD": "struct "}
        return prefix.get(kind, "") + t.get("name", kind)

    hooks = {}
    for t in types.values():
        if t["kind"] == "FUNC" and t["name"].startswith("bpf_lsm_"):
            proto = types[t["type_id"]]
            params = ", ".join(f"{spell(p['type_id'])} {p['name']}" for p in proto["params"])
            hooks[t["name"].removeprefix("bpf_lsm_")] = f"{spell(proto['ret_type_id'])} ({params})"
    return hooks


def hook_abi(names: list[str]) -> str:
    """A table of the LSM hooks the program templates attach to whose prototype differs
    between the kernels `names` (or is missing from one)."""
    sources = [*TEMPLATES.rglob("*.j2"), *TEMPLATES.rglob("*.bpf.h")]
    text = "".join(path.read_text() for path in sorted(sources))
    used = sorted(set(re.findall(r'SEC\("lsm/(\w+)"\)', text)))
    protos = {n: lsm_hook_prototypes(n) for n in names}
    lines = [f"{len(used)} LSM hooks in {TEMPLATES.relative_to(REPO)}/; differing in BTF:"]
    for hook in used:
        seen = {n: protos[n].get(hook, "MISSING") for n in names}
        if len(set(seen.values())) > 1:
            lines.append(f"  {hook}")
            lines += [f"    {n:6} {proto}" for n, proto in seen.items()]
    return "\n".join(lines)


def _system_image(kernel: Kernel) -> Path:
    images = sorted(glob.glob(f"/boot/vmlinuz-{kernel.series}.*-amd64"), key=version_key)
    if not images:
        raise KernelError(
            f"no /boot/vmlinuz-{kernel.series}.*-amd64: run `make setup` "
            "(it installs Debian's linux-image-amd64)"
        )
    if not os.access(images[-1], os.R_OK):
        raise KernelError(f"cannot read {images[-1]}; run as root")
    return Path(images[-1])


def _merged_layout(root: Path, release: str) -> None:
    """Give an unpacked kernel the layout of the older packages, which the rest of this file
    and depmod expect: newer packages put everything under usr/lib/modules/RELEASE (the
    image as `vmlinuz` there), on the merged-/usr assumption that /lib is /usr/lib."""
    if not (root / "lib").exists() and (root / "usr" / "lib").is_dir():
        (root / "lib").symlink_to("usr/lib")
    image = root / "boot" / f"vmlinuz-{release}"
    moved = root / "usr" / "lib" / "modules" / release / "vmlinuz"
    if not image.exists() and moved.is_file():
        image.parent.mkdir(exist_ok=True)
        image.symlink_to(os.path.relpath(moved, image.parent))
    if not image.exists():
        raise KernelError(f"the packages of {release} hold no kernel image")


def _dir(kernel: Kernel) -> Path:
    return CACHE / kernel.series


def _root(kernel: Kernel) -> Path:
    return _dir(kernel) / "root"


def _fetched_release(kernel: Kernel) -> str | None:
    try:
        release = (_dir(kernel) / RELEASE_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    if not (_root(kernel) / "boot" / f"vmlinuz-{release}").is_file():
        return None
    return release


def _link_modules(kernel: Kernel, release: str) -> None:
    """/lib/modules/RELEASE -> the unpacked modules, unless a valid one is there already
    (installed by a package, or linked by another checkout: same release, same files)."""
    link = MODULES / release
    if (link / "modules.dep").is_file():
        return
    if link.is_symlink():
        link.unlink()  # dangling: its checkout was removed
    elif link.exists():
        raise KernelError(f"{link} exists without modules.dep; remove it or reinstall its package")
    try:
        link.symlink_to(_root(kernel) / "lib" / "modules" / release)
    except OSError as err:
        raise KernelError(f"cannot link {link} to the unpacked modules: {err}") from None


def _run(command: list[str], what: str, cwd: Path | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise KernelError(f"{what} failed (exit {result.returncode}): " + " / ".join(detail))
    return result.stdout


def _compare_versions(a: tuple[str, str], b: tuple[str, str]) -> int:
    def less(x: str, y: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", x, "lt", y]).returncode == 0

    return -1 if less(a[0], b[0]) else 1 if less(b[0], a[0]) else 0


def version_key(path: str) -> tuple[int, ...]:
    """Sort key of a kernel image path by the numbers in its release."""
    return tuple(int(n) for n in re.findall(r"\d+", os.path.basename(path)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kernels.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    fetch_parser = sub.add_parser("fetch", help="download and unpack kernels (default: all)")
    fetch_parser.add_argument("series", nargs="*", default=list(DEFAULT))
    fetch_parser.add_argument("--refresh", action="store_true", help="update to the newest build")
    image_parser = sub.add_parser("image", help="print a kernel's image path")
    image_parser.add_argument("name", help="a series (6.1, 6.12) or a release")
    sub.add_parser("list", help="the kernels of the matrix and their state")
    abi_parser = sub.add_parser("hook-abi", help="LSM hooks whose BTF prototype differs")
    abi_parser.add_argument("names", nargs="*", default=list(DEFAULT))
    args = parser.parse_args(argv)
    try:
        if args.action == "fetch":
            unknown = [s for s in args.series if s not in KERNELS]
            if unknown:
                parser.error(f"unknown kernel {unknown[0]!r}: choose from {', '.join(KERNELS)}")
            for series in args.series:
                fetch(KERNELS[series], refresh=args.refresh)
        elif args.action == "image":
            print(image(args.name))
        elif args.action == "hook-abi":
            print(hook_abi(args.names))
        else:
            for kernel in KERNELS.values():
                try:
                    state = str(image(kernel.series))
                except KernelError as err:
                    state = f"not available: {err}"
                print(f"{kernel.series:6} {kernel.description}\n       {state}")
    except KernelError as err:
        print(f"kernels: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
