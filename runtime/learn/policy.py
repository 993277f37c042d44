"""What draft and suggest share: compiling policy text with the real compiler, writing rules.

Rules are written in the canonical form `kind(OBJECT, flag|flag)`, with the fewest flag names
(a flag another one implies, such as `getattr` next to `read`, is left out) in the order of
the kind's flag table in compiler/language.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bpfbox.compiler import ast, ir, language
from bpfbox.compiler.diagnostics import render_all
from bpfbox.compiler.pipeline import FRONT_END, Compilation, produced, run
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.compiler.source import SourceFile

from .decide import Request
from .paths import literal


class PolicyProblem(Exception):
    """A policy (the user's, or one bpfbox-learn wrote) does not compile cleanly."""


@dataclass(frozen=True)
class Compiled:
    """What the compiler's front end made of a policy that compiles cleanly."""

    policy: ast.Policy
    program: ir.Program


def compile_text(
    text: str, name: str, path: Path | None, resolver: ElfResolver, warnings_ok: bool = False
) -> Compiled:
    """Run the compiler's front end on `text` (named `name`; includes relative to `path`).

    Raises PolicyProblem, with the compiler's own rendering, on errors (and on warnings too,
    unless `warnings_ok`).
    """
    compilation = run(Compilation(SourceFile(name, path, text), resolver), FRONT_END)
    diagnostics = compilation.diagnostics
    if diagnostics.error_count() or (diagnostics.sorted() and not warnings_ok):
        report = render_all(compilation.diagnostics, compilation.sources)
        raise PolicyProblem(f"`{name}` does not compile cleanly:\n{report.rstrip()}")
    return Compiled(
        produced(compilation.policy, "policy"), produced(compilation.program, "program")
    )


def quote(text: str) -> str:
    """A policy string literal for `text`."""
    body = []
    for char in text:
        if char in '\\"':
            body.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            body.append(f"\\x{ord(char):02x}")
        else:
            body.append(char)
    return '"' + "".join(body) + '"'


def flag_names(kind: str, mask: int) -> list[str]:
    """The fewest names of `kind`'s flag table that grant exactly `mask` (with implications)."""
    table = language.RULE_KINDS[kind].flags
    names = table.names(mask)
    implied = {n for name in names for n in (table.implied or {}).get(name, ())}
    return [name for name in names if name not in implied]


def closure(kind: str, mask: int) -> int:
    """`mask` with the flags its flags imply: what a rule with these flags grants."""
    return language.RULE_KINDS[kind].flags.mask(flag_names(kind, mask))


@dataclass(frozen=True)
class RuleObject:
    """What a rule is about, as written in it: a glob, a target, a family, or nothing."""

    kind: str
    text: str | None  # `"/etc/passwd"`, `self`, `"/usr/bin/kill"`, `inet6`; None for cap

    def rule(self, mask: int) -> str:
        flags = "|".join(flag_names(self.kind, mask))
        arguments = [self.text, flags] if self.text is not None else [flags]
        return f"{self.kind}({', '.join(arguments)})"


def object_of(request: Request, path_glob: str | None = None) -> RuleObject:
    """The object a rule needs to grant `request`: the path as a literal glob (or
    `path_glob`), the target (`self` for the profile's own program), the family."""
    kind = language.RULE_KINDS[request.kind]
    if kind.object is language.Object.PATH:
        return RuleObject(request.kind, quote(path_glob or literal(request.known_path)))
    if kind.object is language.Object.CLASS:
        return RuleObject(request.kind, request.family)
    if kind.object is language.Object.NONE:
        return RuleObject(request.kind, None)
    target = "self" if request.target_is_self else quote(literal(request.known_target))
    return RuleObject(request.kind, target)


def same_program(exe: str, profile: str, resolver: ElfResolver) -> bool:
    """Whether `exe` is the profile's program (also through a symlink under the sysroot)."""
    if exe == profile:
        return True
    return resolver.locate(exe).resolve() == resolver.locate(profile).resolve()
