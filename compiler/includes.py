"""Pass 2, include expansion: splice `#![include "..."]` fragments into the AST.

Input: the parsed main policy.  Output: the same policy whose include attributes are replaced
by `ast.Included` nodes holding the fragment's items (parsed, with spans in their own files).
A bare name (`base`) names a fragment shipped with bpfbox; anything with a `/` or a `.` is a
file path relative to the including file.  Cycles are errors.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from . import ast
from .diagnostics import Diagnostics, Note
from .parse import parse_source
from .source import SourceFile, SourceMap

LIBRARY_PACKAGE = "bpfbox.compiler"
LIBRARY_FOLDER = "includes"


def library_names() -> list[str]:
    """The fragments shipped with bpfbox, by include name."""
    folder = resources.files(LIBRARY_PACKAGE).joinpath(LIBRARY_FOLDER)
    return sorted(
        p.name.removesuffix(".bpfbox") for p in folder.iterdir() if p.name.endswith(".bpfbox")
    )


def expand_includes(policy: ast.Policy, sources: SourceMap, diagnostics: Diagnostics) -> ast.Policy:
    """Replace every include in `policy` (and in what it includes) by its fragment."""
    main = sources.get(policy.file)
    stack = [_identity(main)]
    items = _expand_items(policy.items, main, sources, diagnostics, stack)
    return ast.Policy(policy.file, items, policy.span)


def _identity(source: SourceFile) -> str:
    return str(source.path.resolve()) if source.path else f"<library>/{source.name}"


def _expand_items(items, including: SourceFile, sources, diagnostics, stack) -> tuple:
    expanded = []
    for item in items:
        if isinstance(item, ast.FileAttribute) and item.name.text == "include" and item.args:
            fragment = _load(item, including, sources, diagnostics, stack)
            if fragment is not None:
                expanded.append(fragment)
        else:
            expanded.append(item)
    return tuple(expanded)


def _load(attribute, including, sources, diagnostics, stack) -> ast.Included | None:
    name = attribute.args.value.value
    source = _find(name, including)
    if source is None:
        diagnostics.add(
            "E0401",
            f"include `{name}` not found",
            attribute.args.value.span,
            help=_not_found_help(name, including),
        )
        return None
    identity = _identity(source)
    if identity in stack:
        chain = " -> ".join(Path(s).name for s in (*stack[stack.index(identity) :], identity))
        diagnostics.add(
            "E0402",
            f"include cycle: `{name}` includes itself",
            attribute.args.value.span,
            notes=(Note(f"the cycle is {chain}"),),
            help="remove one of the includes in the cycle",
        )
        return None
    sources.add(source)
    policy = parse_source(source, diagnostics)
    if policy is None:
        return None
    stack.append(identity)
    items = _expand_items(policy.items, source, sources, diagnostics, stack)
    stack.pop()
    return ast.Included(source.name, items, attribute.span)


def _find(name: str, including: SourceFile) -> SourceFile | None:
    if "/" not in name and "." not in name:
        resource = resources.files(LIBRARY_PACKAGE).joinpath(LIBRARY_FOLDER, f"{name}.bpfbox")
        if not resource.is_file():
            return None
        return SourceFile(f"<bpfbox>/{name}.bpfbox", None, resource.read_text())
    base = including.path.parent if including.path else Path.cwd()
    path = base / name
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None
    display = str(Path(including.name).parent / name) if including.path else name
    return SourceFile(display, path, text)


def _not_found_help(name: str, including: SourceFile) -> str:
    if "/" not in name and "." not in name:
        shipped = ", ".join(f"`{n}`" for n in library_names())
        return f"a bare name is a fragment shipped with bpfbox: {shipped}"
    return f"paths are relative to the including file (`{including.name}`)"
