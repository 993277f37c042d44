"""Pass 4, symbol resolution: the profile program, `#[func]` offsets and `#[kfunc]` names.

Input: the checked AST and a `Resolver`.  Output: the profile path and the list of contexts
(deduplicated, numbered in order of first use) with their uprobe file offsets.
`ElfResolver` is the seam between the compiler and the machine: it reads real ELF files and
the kernel's BTF, under a system root (`--sysroot`, for a policy meant for another root file
system such as a container image).  Golden tests point the root at a tree of checked-in
fixture binaries, so that their output does not depend on this machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import ast, btf, c_text, symbols
from .diagnostics import Diagnostics, Note, did_you_mean
from .ir import Context

DEFAULT_BTF = Path(btf.DEFAULT_BTF_PATH)


class EnvironmentProblem(Exception):
    """The machine, not the policy, is wrong (e.g. no kernel BTF): exit status 2."""


@dataclass
class ElfResolver:
    """Finds programs, functions and kernel functions on this machine.

    Paths in the policy are looked up under `sysroot`.  `symbols_file` holds separate debug
    symbols for the profile program.
    """

    btf_path: Path = DEFAULT_BTF
    symbols_file: Path | None = None
    sysroot: Path = Path("/")

    def __post_init__(self) -> None:
        self._kernel_functions: frozenset[str] | None = None

    def locate(self, path: str) -> Path:
        """The file behind an absolute policy path."""
        return self.sysroot / path.lstrip("/")

    def check_program(self, path: str) -> None:
        located = self.locate(path)
        with _policy_paths(located, path):
            symbols.check_elf_executable(located)

    def function(self, binary: str, name: str, is_profile: bool) -> symbols.FunctionSymbol:
        symbols_file = self.symbols_file if is_profile else None
        located = self.locate(binary)
        with _policy_paths(located, binary):
            return symbols.resolve_function(located, name, symbols_file)

    def kernel_functions(self) -> frozenset[str]:
        if self._kernel_functions is None:
            if not Path(self.btf_path).exists():
                raise EnvironmentProblem(
                    f"`{self.btf_path}` does not exist: this kernel has no BTF, which `#[kfunc]` "
                    "needs; pass `--btf FILE` with the BTF of the kernel the policy will run on"
                )
            try:
                self._kernel_functions = btf.kernel_function_names(self.btf_path)
            except btf.BtfError as error:
                raise EnvironmentProblem(
                    f"cannot read BTF from `{self.btf_path}`: {error}"
                ) from None
        return self._kernel_functions


@contextmanager
def _policy_paths(located: Path, path: str) -> Iterator[None]:
    """Make errors name files as the policy does, not by where the sysroot put them."""
    try:
        yield
    except symbols.SymbolError as error:
        if error.args:
            error.args = (str(error.args[0]).replace(str(located), path), *error.args[1:])
        raise


@dataclass(frozen=True)
class Resolved:
    profile: str
    contexts: tuple[Context, ...]

    def index(self, directive: ast.Directive) -> int:
        """The context index of a `func`/`kfunc` directive."""
        key = _context_key(directive)
        return next(c.index for c in self.contexts if _key_of(c) == key)


def _context_key(directive: ast.Directive) -> tuple[str, str, str | None]:
    args = ast.attribute_args(directive)
    library = args.library.value if args.library else None
    return directive.name.text, args.value.value, library


def _key_of(context: Context) -> tuple[str, str, str | None]:
    return context.kind, context.symbol, context.library


def resolve_symbols(
    policy: ast.Policy, resolver: ElfResolver, diagnostics: Diagnostics
) -> Resolved | None:
    """Check the profile program and resolve every context directive; None on errors."""
    profile_attr = ast.file_attributes(policy.items, "profile")[0]
    profile = ast.attribute_args(profile_attr).value
    profile_ok = _check_profile_program(profile, resolver, diagnostics)
    contexts: dict[tuple[str, str, str | None], Context] = {}
    for _, chain in ast.directed_rules(policy.items):
        for directive in (d for directives in chain for d in directives):
            if directive.name.text not in ("func", "kfunc"):
                continue
            key = _context_key(directive)
            if key in contexts or not _is_symbol_name(directive, diagnostics):
                continue
            if directive.name.text == "kfunc":
                context = _resolve_kfunc(directive, len(contexts), resolver, diagnostics)
            elif profile_ok or ast.attribute_args(directive).library:
                context = _resolve_func(
                    directive, profile.value, len(contexts), resolver, diagnostics
                )
            else:
                continue
            if context is not None:
                contexts[key] = context
    if diagnostics.error_count():
        return None
    return Resolved(profile.value, tuple(contexts.values()))


#: Function names as symbol tables spell them: C identifiers, plus the `.` of compiler clones
#: (`f.cold`) and the `@` of versioned names for `#[func]`; kernel functions are identifiers.
_SYMBOL_NAME = {
    "func": re.compile(r"[A-Za-z_.][A-Za-z0-9_.$]*(@@?[A-Za-z0-9_.]+)?"),
    "kfunc": c_text.C_IDENTIFIER,
}


def _is_symbol_name(directive: ast.Directive, diagnostics: Diagnostics) -> bool:
    """Refuse names no symbol table holds before looking them up (they would also reach the
    generated C, which must not be given a quote or a comment end from a crafted BTF)."""
    name = ast.attribute_args(directive).value
    if _SYMBOL_NAME[directive.name.text].fullmatch(name.value):
        return True
    diagnostics.add(
        "E0511",
        f"`{c_text.comment(name.value)}` is not a function name",
        name.span,
        help="a function name is a C identifier, as `nm` or `bpftool btf dump` print it",
    )
    return False


def _check_profile_program(
    profile: ast.String, resolver: ElfResolver, diagnostics: Diagnostics
) -> bool:
    try:
        resolver.check_program(profile.value)
    except symbols.NotFoundError:
        diagnostics.add(
            "E0501",
            f"the profile program `{profile.value}` does not exist",
            profile.span,
            help="install the program first, or correct the path",
        )
        return False
    except symbols.SymbolError as error:
        diagnostics.add(
            "E0502",
            f"the profile program `{profile.value}` is not an ELF executable: {error}",
            profile.span,
            help="a profile names a compiled program; for a script, profile its interpreter",
        )
        return False
    return True


def _resolve_func(
    directive: ast.Directive,
    profile: str,
    index: int,
    resolver: ElfResolver,
    diagnostics: Diagnostics,
) -> Context | None:
    args = ast.attribute_args(directive)
    name = args.value
    library = args.library
    binary = library.value if library else profile
    try:
        found = resolver.function(binary, name.value, is_profile=library is None)
    except symbols.UnknownFunctionError as error:
        diagnostics.add(
            "E0503",
            f"function `{name.value}` not found in `{binary}`",
            name.span,
            help=did_you_mean(error.candidates)
            or ("check the spelling; `nm -C` on the binary lists its functions",),
        )
        return None
    except (symbols.MismatchedSymbolsError, symbols.UnmappedFunctionError):
        diagnostics.add(
            "E0509",
            f"the separate symbols do not match `{binary}`: `{name.value}` cannot be placed in it",
            name.span,
            help="pass the `--symbols` file made from this very build of the program",
        )
        return None
    except symbols.StrippedError:
        diagnostics.add(
            "E0504",
            f"`{binary}` is stripped: it has no symbol table to find `{name.value}` in",
            name.span,
            help=(
                "build the program without stripping it, or pass `--symbols FILE` with its "
                "separate debug symbols"
            ),
        )
        return None
    except symbols.DuplicateFunctionError as error:
        places = ", ".join(f"{m.address:#x} ({m.binding})" for m in error.matches)
        diagnostics.add(
            "E0505",
            f"`{name.value}` names {len(error.matches)} different functions in `{binary}`",
            name.span,
            notes=(Note(f"they are at {places}"),),
            help="rename the `static` functions so that each name is unique",
        )
        return None
    except symbols.SymbolError as error:
        diagnostics.add(
            "E0507",
            f"cannot use `{binary}`: {error}",
            (library or name).span,
            help="a `func ... in` library must be an existing ELF shared library",
        )
        return None
    return Context(
        index,
        "func",
        name.value,
        binary,
        found.offset,
        directive.span,
        library.value if library else None,
    )


def _resolve_kfunc(
    directive: ast.Directive, index: int, resolver: ElfResolver, diagnostics: Diagnostics
) -> Context | None:
    name = ast.attribute_args(directive).value
    known = resolver.kernel_functions()
    if name.value not in known:
        diagnostics.add(
            "E0506",
            f"kernel function `{name.value}` is not in the kernel's BTF",
            name.span,
            help=did_you_mean(btf.nearest_names(name.value, known))
            or ("`#[kfunc]` needs a function the kernel exports in BTF (see `bpftool btf dump`)",),
        )
        return None
    return Context(index, "kfunc", name.value, span=directive.span)
