"""The draft policy: what learning runs recorded, written as rules a person wants to read.

1. Accesses that the `base` fragment already grants (decided with the compiler's DFAs on the
   IR of `#![profile P] #![include "base"]`, see `decide`) are left out and counted.
2. Each access of the profile's program is attributed from its user stack: the functions of
   the program on the stack (frames whose build ID is the program's, symbolised with
   `FunctionIndex`; a frame's offset minus one, because outer frames are return addresses),
   the kernel's frame-pointer frames first, then the return addresses the recorder's stack
   scan found (scan.py), which reach past libc functions that break the frame-pointer walk.
   Functions on the stack of every attributed access (`main`, `_start`) tell nothing and are
   dropped; so are ambiguous names (two `static` functions).  The access's scope is the
   outermost function left: `check_password` rather than the helper it calls, which other
   code may call too (and which a frame-pointer-less libc function's caller often is: the
   unwinder skips it).  No function left, no usable stack, or another program: no scope.
3. Paths collapse into globs (`paths`).  Accesses group by (scope, kind, object), flags
   merge, and a scoped group loses the flags an unscoped rule for the same object grants.
4. The draft is compiled with the real compiler, must give no diagnostic at all, and must
   allow every recorded access (with the functions on its stack): otherwise it is a bug of
   bpfbox-learn, reported as such rather than written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bpfbox.compiler import ir, language, symbols
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.runtime.events import shown

from . import paths
from .decide import Request, allows
from .log import TARGETED_KINDS, Access, Frame, Run
from .policy import PolicyProblem, RuleObject, closure, compile_text, object_of, quote, same_program

#: Headings of the rule kinds in a block, in the order of the language's table.
_HEADINGS = {
    "fs": "files",
    "proc": "/proc entries of processes",
    "signal": "signals",
    "ptrace": "tracing",
    "net": "network",
    "cap": "capabilities",
}
_BASE = "base"


class LearnError(Exception):
    """The inputs cannot give a draft (a message for the user, exit status 2)."""


@dataclass
class _Group:
    """The accesses one draft rule stands for."""

    mask: int = 0
    count: int = 0
    runs: set[int] = field(default_factory=set)

    def add(self, mask: int, count: int, runs: Iterable[int]) -> None:
        self.mask |= mask
        self.count += count
        self.runs |= set(runs)


@dataclass
class _Attributed:
    access: Access
    request: Request
    own: bool  # made by the profile's program (not by a program a descendant executed)
    functions: tuple[str, ...] | None  # the program's functions on its stack, innermost first
    scope: str | None = None  # the `#[func]` block its rule goes in


def draft(
    runs: list[Run],
    accesses: list[Access],
    resolver: ElfResolver,
    profile: str | None = None,
    include_base: bool = True,
    output_name: str = "draft.bpfbox",
    log_names: tuple[str, ...] = (),
) -> str:
    """The text of the draft policy for `runs` (see the module docstring)."""
    profile = _profile(runs, profile)
    try:
        resolver.check_program(profile)
    except symbols.SymbolError as error:
        raise LearnError(f"the profile program cannot be confined: {error}") from None
    notes = [
        f"Run {run.index + 1} lost {_count(run.lost, 'access')} (the kernel's ring buffer was "
        "full): rules may be missing; record it again."
        for run in runs
        if run.profile == profile and run.lost
    ]
    index = _function_index(profile, resolver, notes)
    attributed = []
    for access in accesses:
        if access.run.profile == profile:
            own = same_program(access.exe, profile, resolver)
            functions = _functions(access, index) if own else None
            attributed.append(
                _Attributed(access, _request(access, profile, resolver), own, functions)
            )
    if index is not None:
        _choose_scopes(attributed, index)
    base = _base_program(profile, resolver) if include_base else None
    uncovered = [a for a in attributed if base is None or not allows(base, a.request)]
    _note_unattributed(uncovered, profile, index, notes)
    header = _header(runs, profile, log_names, len(attributed), len(attributed) - len(uncovered))
    groups = _group(uncovered)
    text = _render(header, profile, include_base, notes, groups)
    _verify(text, output_name, resolver, attributed)
    return text


def _profile(runs: list[Run], chosen: str | None) -> str:
    profiles = sorted({run.profile for run in runs})
    if chosen is not None:
        if chosen not in profiles:
            raise LearnError(
                f"no run of the logs confined `{chosen}`; they confined {', '.join(profiles)}"
            )
        return chosen
    if len(profiles) > 1:
        raise LearnError(
            f"the runs confined several programs ({', '.join(profiles)}); "
            "choose one with --profile"
        )
    return profiles[0]


def _function_index(
    profile: str, resolver: ElfResolver, notes: list[str]
) -> symbols.FunctionIndex | None:
    try:
        index = symbols.function_index(resolver.locate(profile), resolver.symbols_file)
    except symbols.SymbolError as error:
        notes.append(f"The functions of {profile} cannot be read ({error}).")
        return None
    if not index.starts:
        notes.append(
            f"{profile} is stripped and no --symbols file was given: stacks cannot name its "
            "functions."
        )
        return None
    if resolver.symbols_file is not None:
        notes.append(
            f"Function names come from {resolver.symbols_file}: compile with "
            f"`bpfboxc --symbols {resolver.symbols_file}`."
        )
    if index.build_id is None:
        notes.append(
            f"{profile} has no GNU build ID (link it with -Wl,--build-id), so no stack frame "
            "can be matched to it."
        )
        return None
    return index


def _request(access: Access, profile: str, resolver: ElfResolver) -> Request:
    is_self = (
        access.kind in TARGETED_KINDS
        and access.object is not None
        and same_program(access.object, profile, resolver)
    )
    return Request(
        kind=access.kind,
        mask=access.mask(),
        path=access.object if access.kind == "fs" else None,
        target=access.object if access.kind in TARGETED_KINDS else None,
        target_is_self=is_self,
        family=access.family,
    )


def _functions(access: Access, index: symbols.FunctionIndex | None) -> tuple[str, ...] | None:
    """The program's functions on the access's stack, innermost first; None when unknown.

    The kernel's frame-pointer frames come first: they are the stack's real chain as far as
    it goes.  The stack scan's return addresses (`scanned`) fill in what that walk missed
    (it stops in libc functions that keep data in rbp), in the stack's order (see
    `_scanned_functions`), but none the scan found beyond the outermost function the walk
    reached: a walk that got that far is right, and beyond it the scan can only add stale
    frames, which would be taken for the outermost function.  The entry point's function
    (`_start`) is left out: it is the root of every stack of the program, so it tells
    nothing, and whether a bounded scan reaches it depends only on how deep the access was
    made.
    """
    if index is None:
        return None
    frames = (access.stack or ()) if not access.stack_error else ()
    root = index.function_at(index.entry) if index.entry is not None else None
    names: list[str] = []
    walked = [_frame_function(frame, index) for frame in frames]
    scanned = _scanned_functions(access.scanned or (), index)
    reached = [name for name in walked if name is not None]
    if reached and reached[-1] in scanned:
        scanned = scanned[: len(scanned) - scanned[::-1].index(reached[-1])]
    for name in (*walked, *scanned):
        if name is not None and name != root and name not in names:
            names.append(name)
    return tuple(names) or None


def _frame_function(frame: Frame, index: symbols.FunctionIndex) -> str | None:
    """The program's function a return address (an outer frame) lies in, or None."""
    if not _same_build_id(frame.build_id, index.build_id) or not frame.offset:
        return None
    return index.function_at(frame.offset - 1)


def _scanned_functions(frames: Iterable[Frame], index: symbols.FunctionIndex) -> list[str]:
    """The functions of the scan's return addresses, innermost first, less those a direct
    call shows to be stale.

    A return address after `call F` (its `callee`) belongs to the frame right above F's:
    whatever the scan found between it and the nearest return address into F below it lies
    in F's own frame, where no live return address can be, so it is an earlier call's
    leftover and is dropped.  A direct call whose callee shows no frame (F jumped to another
    function, or called none) and an indirect call prove nothing: kept.
    """
    kept: list[str] = []
    for frame in frames:
        name = _frame_function(frame, index)
        if name is None:
            continue
        callee = index.function_starting_at(frame.callee) if frame.callee is not None else None
        if callee in kept:
            del kept[len(kept) - kept[::-1].index(callee) :]
        kept.append(name)
    return kept


def _same_build_id(reported: str | None, program: str | None) -> bool:
    """The kernel reports build IDs in 20 bytes, a shorter one (MD5's 16) padded with zeros;
    a program without a build ID matches no frame."""
    if reported is None or program is None or not reported.startswith(program):
        return False
    return not reported[len(program) :].strip("0")


def _choose_scopes(attributed: list[_Attributed], index: symbols.FunctionIndex) -> None:
    """Set the `#[func]` scope of each access: the outermost telling function on its stack."""
    known = [set(a.functions) for a in attributed if a.functions]
    universal = set.intersection(*known) if known else set()
    for item in attributed:
        candidates = [
            name
            for name in item.functions or ()
            if name not in universal and name not in index.ambiguous
        ]
        item.scope = candidates[-1] if candidates else None


def _note_unattributed(
    uncovered: list[_Attributed],
    profile: str,
    index: symbols.FunctionIndex | None,
    notes: list[str],
) -> None:
    if index is None:
        return
    own = [a for a in uncovered if a.own]
    blind = [a for a in own if a.functions is None]
    if not blind:
        return
    if len(blind) == len(own):
        notes.append(f"No recorded stack shows a function of {profile}, so no rule is scoped.")
    else:
        notes.append(
            f"{len(blind)} of the {len(own)} accesses of {profile} the rules stand for show "
            "no function of it on their stack; their rules are not scoped."
        )
    notes.append(
        "Stacks are unwound by frame pointers and a scan of the stack's top: build the program "
        "with -fno-omit-frame-pointer and keep its symbols to get #[func] blocks.  (What its "
        "loader does before main() never shows one.)"
    )


def _base_program(profile: str, resolver: ElfResolver) -> ir.Program:
    text = f"#![profile {quote(profile)}]\n#![include {quote(_BASE)}]\n"
    return compile_text(text, "<base coverage>", None, resolver).program


def _group(items: list[_Attributed]) -> dict[str | None, dict[RuleObject, _Group]]:
    """Draft rules by scope (None: unscoped), with their merged flags and counts."""
    seen: dict[str, paths.Seen] = {}
    for item in items:
        if item.request.kind == "fs":
            path = item.request.known_path
            before = seen.get(path, paths.Seen(0, frozenset()))
            seen[path] = paths.Seen(
                before.mask | item.request.mask, before.pids | {item.access.pid}
            )
    globs = paths.collapse(seen)
    groups: dict[str | None, dict[RuleObject, _Group]] = {}
    for item in items:
        obj = object_of(item.request, globs.get(item.request.path or ""))
        groups.setdefault(item.scope, {}).setdefault(obj, _Group()).add(
            item.request.mask, 1, [item.access.run.index]
        )
    plain = groups.get(None, {})
    for scope in [s for s in groups if s is not None]:
        for obj, group in list(groups[scope].items()):
            if obj in plain:
                group.mask &= ~closure(obj.kind, plain[obj].mask)
                if not group.mask:
                    plain[obj].add(0, group.count, group.runs)
                    del groups[scope][obj]
        if not groups[scope]:
            del groups[scope]
    return groups


def _header(
    runs: list[Run], profile: str, log_names: tuple[str, ...], total: int, covered: int
) -> list[str]:
    mine = [run for run in runs if run.profile == profile]
    lines = [
        f"Drafted by bpfbox-learn from {_count(len(mine), 'run')} of {profile}"
        + (f" ({', '.join(log_names)})" if log_names else "")
        + ":"
    ]
    lines += [f"  run {run.index + 1}: {shown(' '.join(run.command))}" for run in mine]
    lines.append("A learning run allows whatever the program did: review every rule before")
    lines.append('enforcing it.  "seen N times in M runs" counts recorded accesses.')
    if covered:
        lines.append(
            f"The {_BASE} fragment grants {covered} of the {_count(total, 'recorded access')}"
            " (loader, libraries, locale, terminal)."
        )
    return lines


def _count(number: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{number} {noun if number == 1 else plural}"


def _render(
    header: list[str],
    profile: str,
    include_base: bool,
    notes: list[str],
    groups: dict[str | None, dict[RuleObject, _Group]],
) -> str:
    lines = [f"// {line}" for line in header]
    lines.append(f"#![profile {quote(profile)}]")
    if include_base:
        lines.append(f"#![include {quote(_BASE)}]")
    if notes:
        lines.append("")
        lines += [f"// {line}" for line in _wrap(" ".join(notes))]
    if None in groups:
        lines += ["", "// Seen outside the functions below, or with no usable stack.", "#[allow] {"]
        lines += _block(groups[None])
        lines.append("}")
    for scope in sorted(s for s in groups if s is not None):
        lines += ["", f"// Seen only inside {scope}().", f"#[func {quote(scope)}]", "#[allow] {"]
        lines += _block(groups[scope])
        lines.append("}")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 92) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _block(rules: dict[RuleObject, _Group]) -> list[str]:
    lines: list[str] = []
    kinds = list(language.RULE_KINDS)
    ordered = sorted(
        rules.items(), key=lambda item: (kinds.index(item[0].kind), item[0].text or "")
    )
    heading = None
    for obj, group in ordered:
        if obj.kind != heading:
            heading = obj.kind
            lines.append(f"    // {_HEADINGS[heading]}")
        seen = f"seen {_count(group.count, 'time')} in {_count(len(group.runs), 'run')}"
        lines.append(f"    {obj.rule(group.mask)}  // {seen}")
    return lines


def _verify(
    text: str, output_name: str, resolver: ElfResolver, attributed: list[_Attributed]
) -> None:
    """The draft compiles without any diagnostic and allows every recorded access."""
    try:
        program = compile_text(text, output_name, None, resolver).program
    except PolicyProblem as problem:
        raise AssertionError(f"bpfbox-learn wrote a draft that {problem}") from None
    for item in attributed:
        if not allows(program, item.request, frozenset(item.functions or ())):
            raise AssertionError(
                f"bpfbox-learn wrote a draft that does not allow the access at "
                f"{item.access.where}"
            )
