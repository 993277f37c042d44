"""Pass 2, include expansion: splice `#![include "..."]` fragments into the AST.

Input: the parsed main policy.  Output: the same policy whose include attributes are replaced
by `ast.Included` nodes holding the fragment's items (parsed, with spans in their own files).
A bare name (`base`) names a fragment shipped with bpfbox; anything with a `/` or a `.` is a
file path relative to the including file.  Cycles are errors; a fragment included twice is
spliced in once.  Nesting depth and the number of fragments are bounded (E0404).
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from . import ast, files
from .diagnostics import Diagnostics, Note
from .parse import parse_source
from .source import SourceFile, SourceMap, read_policy

LIBRARY_PACKAGE = "bpfbox.compiler"
LIBRARY_FOLDER = "includes"
_LIBRARY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def library_names() -> list[str]:
    """The fragments shipped with bpfbox, by include name."""
    folder = resources.files(LIBRARY_PACKAGE).joinpath(LIBRARY_FOLDER)
    return sorted(
        p.name.removesuffix(".bpfbox") for p in folder.iterdir() if p.name.endswith(".bpfbox")
    )


#: How deep includes may nest, and how many distinct fragments one policy may include.
MAX_INCLUDE_DEPTH = 32
MAX_INCLUDES = 256


@dataclass
class _Expansion:
    """What one expansion has seen: the chain of files being expanded, and every fragment
    already spliced in (by real path), so that each is read and parsed once."""

    sources: SourceMap
    diagnostics: Diagnostics
    stack: list[str] = field(default_factory=list)
    included: set[str] = field(default_factory=set)


def expand_includes(policy: ast.Policy, sources: SourceMap, diagnostics: Diagnostics) -> ast.Policy:
    """Replace every include in `policy` (and in what it includes) by its fragment.

    A fragment is spliced in where it is first included; including it again (directly, or
    through another fragment) adds nothing, as its rules are already part of the policy."""
    main = sources.files[policy.file]  # the pipeline's first file
    expansion = _Expansion(sources, diagnostics, [_identity(main)])
    items = _expand_items(policy.items, main, expansion)
    return ast.Policy(policy.file, items, policy.span)


def _identity(source: SourceFile) -> str:
    return str(source.path.resolve()) if source.path else f"<library>/{source.name}"


def _expand_items(
    items: tuple[ast.Item, ...], including: SourceFile, expansion: _Expansion
) -> tuple[ast.Item, ...]:
    expanded: list[ast.Item] = []
    for item in items:
        if isinstance(item, ast.FileAttribute) and item.name.text == "include" and item.args:
            fragment = _load(item, item.args.value, including, expansion)
            if fragment is not None:
                expanded.append(fragment)
        else:
            expanded.append(item)
    return tuple(expanded)


def _load(
    attribute: ast.FileAttribute, fragment: ast.String, including: SourceFile, expansion: _Expansion
) -> ast.Included | None:
    name = fragment.value
    where = fragment.span
    diagnostics = expansion.diagnostics
    try:
        source = _find(name, including)
    except files.InputFileError as error:
        diagnostics.add(
            "E0403",
            f"cannot read include `{name}`: {error.reason}",
            where,
            help="an include names a readable regular file of at most "
            f"{files.describe_size(files.MAX_POLICY_BYTES)}",
        )
        return None
    if source is None:
        diagnostics.add(
            "E0401", f"include `{name}` not found", where, help=_not_found_help(name, including)
        )
        return None
    identity = _identity(source)
    stack = expansion.stack
    if identity in stack:
        chain = " -> ".join(Path(s).name for s in (*stack[stack.index(identity) :], identity))
        diagnostics.add(
            "E0402",
            f"include cycle: `{name}` includes itself",
            where,
            notes=(Note(f"the cycle is {chain}"),),
            help="remove one of the includes in the cycle",
        )
        return None
    if identity in expansion.included:
        return None
    if len(stack) > MAX_INCLUDE_DEPTH:
        diagnostics.add(
            "E0404",
            f"includes nest more than {MAX_INCLUDE_DEPTH} deep",
            where,
            help="include the fragments from fewer levels",
        )
        return None
    if len(expansion.included) >= MAX_INCLUDES:
        diagnostics.add(
            "E0404",
            f"the policy includes more than {MAX_INCLUDES} fragments",
            where,
            help="merge fragments",
        )
        return None
    expansion.included.add(identity)
    expansion.sources.add(source)
    policy = parse_source(source, diagnostics)
    if policy is None:
        return None
    stack.append(identity)
    items = _expand_items(policy.items, source, expansion)
    stack.pop()
    return ast.Included(source.name, items, attribute.span)


def _find(name: str, including: SourceFile) -> SourceFile | None:
    """The fragment `name` names, None if there is none, InputFileError if it is unusable."""
    if "/" not in name and "." not in name:
        if not _LIBRARY_NAME.fullmatch(name):
            return None
        resource = resources.files(LIBRARY_PACKAGE) / LIBRARY_FOLDER / f"{name}.bpfbox"
        if not resource.is_file():
            return None
        return SourceFile(f"<bpfbox>/{name}.bpfbox", None, resource.read_text())
    base = including.path.parent if including.path else Path.cwd()
    path = base / name
    display = str(Path(including.name).parent / name) if including.path else name
    try:
        return read_policy(path, display, what="fragment")
    except files.InputFileError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _not_found_help(name: str, including: SourceFile) -> str:
    if "/" not in name and "." not in name:
        shipped = ", ".join(f"`{n}`" for n in library_names())
        return f"a bare name is a fragment shipped with bpfbox: {shipped}"
    return f"paths are relative to the including file (`{including.name}`)"
