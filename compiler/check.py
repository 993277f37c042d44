"""Pass 3, name and type checks: is every word known and every argument of the right shape?

Input: the include-expanded AST.  Output: diagnostics only; the AST is unchanged.  After this
pass, lowering may assume every name is in the vocabulary of `language` and every path is an
absolute, well-formed glob.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from . import ast, glob, language
from .btf import nearest_names
from .diagnostics import Diagnostics, Note, did_you_mean
from .source import Span


@dataclass
class _Placement:
    """Where the walk is: file attributes are only allowed before the first rule, at top level."""

    seen_rule: Span | None = None
    profile: Span | None = None
    in_fragment: bool = False
    depth: int = 0


def check_policy(policy: ast.Policy, diagnostics: Diagnostics) -> None:
    """Report every unknown name, misplaced attribute and malformed argument in `policy`."""
    placement = _Placement()
    _check_items(policy.items, placement, diagnostics)
    if placement.profile is None:
        diagnostics.add(
            "E0301",
            "the policy has no profile",
            Span(policy.file, 1, 1, 1, 1),
            help='name the confined program first: `#![profile "/usr/bin/program"]`',
        )


def _check_items(items: Iterable[ast.Item], placement: _Placement, diag: Diagnostics) -> None:
    for item in items:
        _check_item(item, placement, diag)


def _check_item(item: ast.Item, placement: _Placement, diag: Diagnostics) -> None:
    if isinstance(item, ast.FileAttribute):
        _check_file_attribute(item, placement, diag)
    elif isinstance(item, ast.Included):
        inner = _Placement(placement.seen_rule, placement.profile, True, placement.depth)
        _check_items(item.items, inner, diag)
        placement.seen_rule = placement.seen_rule or inner.seen_rule
    elif isinstance(item, ast.Directed):
        _check_directives(item.directives, diag)
        _check_item(item.body, placement, diag)
    elif isinstance(item, ast.Block):
        placement.depth += 1
        _check_items(item.items, placement, diag)
        placement.depth -= 1
    elif isinstance(item, ast.Rule):
        placement.seen_rule = placement.seen_rule or item.span
        _check_rule(item, diag)
    else:  # pragma: no cover - the parser builds nothing else
        raise TypeError(f"check: no handling for {type(item).__name__}")


def _unknown(
    diag: Diagnostics, code: str, what: str, name: ast.Name, known: Collection[str]
) -> None:
    """Report a word that is not in the vocabulary `known`, with the nearest one or the list."""
    listing = " and ".join((", ".join(f"`{k}`" for k in list(known)[:-1]), f"`{list(known)[-1]}`"))
    diag.add(
        code,
        f"unknown {what} `{name.text}`",
        name.span,
        help=did_you_mean(nearest_names(name.text, known, limit=1)) or (f"{what}s are {listing}",),
    )


def _check_file_attribute(
    attr: ast.FileAttribute, placement: _Placement, diag: Diagnostics
) -> None:
    name = attr.name.text
    if name not in language.FILE_ATTRIBUTES:
        _unknown(diag, "E0109", "file attribute", attr.name, language.FILE_ATTRIBUTES)
        return
    if not _check_attribute_args(attr.name, attr.args, attr.span, diag, library=False):
        return
    if placement.depth or placement.seen_rule:
        where = "inside a block" if placement.depth else "after a rule"
        diag.add(
            "E0303",
            f"`#![{name}]` {where}",
            attr.span,
            notes=() if placement.depth else (Note("the first rule", placement.seen_rule),),
            help="file attributes come first in the file, before any rule or block",
        )
    if name == "profile":
        _check_profile(attr, placement, diag)


def _check_profile(attr: ast.FileAttribute, placement: _Placement, diag: Diagnostics) -> None:
    if placement.in_fragment:
        diag.add(
            "E0303",
            "an included fragment cannot set the profile",
            attr.span,
            help="only the main policy file names the profile",
        )
        return
    if placement.profile is not None:
        diag.add(
            "E0302",
            "the profile is set twice",
            attr.span,
            notes=(Note("first set here", placement.profile),),
            help="a policy confines one program; write one policy file per program",
        )
        return
    placement.profile = attr.span
    path = ast.attribute_args(attr).value
    if not path.value.startswith("/"):
        diag.add(
            "E0201",
            f"the profile path `{path.value}` is relative",
            path.span,
            help="give the absolute path of the program, e.g. `/usr/bin/program`",
        )
    elif any(c in path.value for c in "*?[]{}"):
        diag.add(
            "E0203",
            "the profile path cannot be a glob",
            path.span,
            help="a profile confines exactly one program; name it by its path",
        )
    else:
        _check_no_nul(path, "profile", diag)


def _check_no_nul(path: ast.String, what: str, diag: Diagnostics) -> None:
    """A file name cannot hold a NUL (a `\\0` or `\\x00` escape): no file has that name."""
    if "\0" in path.value:
        diag.add(
            "E0203",
            f"malformed path: the {what} path contains a NUL character",
            _inside(path, path.value.index("\0")),
            help="remove the `\\0` escape; no file name contains a NUL character",
        )


def _check_attribute_args(
    name: ast.Name, args: ast.AttributeArgs | None, span: Span, diag: Diagnostics, library: bool
) -> bool:
    """Attributes that take a string have exactly one (plus `in "LIB"` where `library`)."""
    word = name.text
    takes_value = word in ("profile", "include", *language.CONTEXTS)
    if not takes_value:
        if args is not None:
            diag.add(
                "E0110",
                f"`{word}` takes no argument",
                args.value.span,
                help=f"write `#[{word}]`",
            )
            return False
        return True
    if args is None:
        diag.add(
            "E0110",
            f"`{word}` needs a string argument",
            span,
            help=f"write e.g. `{_example(word)}`",
        )
        return False
    if args.library is not None and not library:
        diag.add(
            "E0110",
            f'`{word}` does not take `in "..."`',
            args.library.span,
            help='only `#[func "NAME" in "/path/to/library.so"]` names a library',
        )
        return False
    if not args.value.value:
        diag.add("E0110", f"the argument of `{word}` is empty", args.value.span)
        return False
    return True


def _example(word: str) -> str:
    return {
        "profile": '#![profile "/usr/bin/program"]',
        "include": '#![include "base"]',
        "func": '#[func "check_password"]',
        "kfunc": '#[kfunc "vfs_read"]',
    }[word]


def _check_directives(directives: Iterable[ast.Directive], diag: Diagnostics) -> None:
    decisions: list[ast.Directive] = []
    for directive in directives:
        word = directive.name.text
        if word not in language.DIRECTIVES:
            _unknown(diag, "E0103", "directive", directive.name, language.DIRECTIVES)
            continue
        if word == "func" and directive.args and directive.args.library:
            _check_library_path(directive.args.library, diag)
        _check_attribute_args(directive.name, directive.args, directive.span, diag, word == "func")
        if word in language.DECISIONS:
            decisions.append(directive)
    if len({d.name.text for d in decisions}) > 1:
        first, second = decisions[0], next(
            d for d in decisions if d.name.text != decisions[0].name.text
        )
        diag.add(
            "E0111",
            f"`{first.name.text}` and `{second.name.text}` on the same rules",
            second.span,
            notes=(Note(f"`{first.name.text}` given here", first.span),),
            help="a block has one decision: split it into two blocks",
        )


def _check_library_path(library: ast.String, diag: Diagnostics) -> None:
    if not library.value.startswith("/"):
        diag.add(
            "E0201",
            f"the library path `{library.value}` is relative",
            library.span,
            help="give the absolute path of the shared library",
        )
    else:
        _check_no_nul(library, "library", diag)


def _check_rule(rule: ast.Rule, diag: Diagnostics) -> None:
    kind = language.RULE_KINDS.get(rule.kind.text)
    if kind is None:
        _unknown(diag, "E0101", "rule kind", rule.kind, language.RULE_KINDS)
        return
    if not kind.required <= len(rule.args) <= len(kind.parameters):
        expected = (
            str(kind.required)
            if kind.required == len(kind.parameters)
            else f"{kind.required} or {len(kind.parameters)}"
        )
        diag.add(
            "E0107",
            f"`{kind.name}` takes {expected} argument{'' if expected == '1' else 's'} "
            f"but {len(rule.args)} {'was' if len(rule.args) == 1 else 'were'} given",
            rule.span,
            help=f"write `{kind.signature()}`",
        )
        return
    for parameter, argument in zip(kind.parameters, rule.args, strict=False):
        _CHECKERS[parameter.kind](parameter, argument, kind, diag)


def _check_path_argument(
    parameter: language.Parameter,
    argument: ast.Argument,
    kind: language.RuleKind,
    diag: Diagnostics,
) -> None:
    if not isinstance(argument, ast.String):
        diag.add(
            "E0108",
            f"`{kind.name}` expects a quoted path here, not a name",
            argument.span,
            help=f'quote it: `"/{_flat(argument)}"`',
        )
        return
    check_glob(argument, diag)


def check_glob(argument: ast.String, diag: Diagnostics) -> None:
    """A path argument must be absolute, a valid glob, and able to match a kernel path."""
    value = argument.value
    if not value.startswith("/"):
        diag.add(
            "E0201",
            f"the path `{value}` is relative",
            argument.span,
            help="paths in rules are absolute: the kernel checks the resolved path",
        )
        return
    try:
        glob.parse(value)
    except glob.GlobError as error:
        diag.add("E0202", f"malformed glob: {error}", _inside(argument, error.offset))
        return
    problem = glob.path_problem(value)
    if problem:
        message, offset = problem
        diag.add("E0203", f"malformed path: {message}", _inside(argument, offset))


def _inside(argument: ast.String, offset: int) -> Span:
    """The span of one character of a string's value (exact when it has no escapes)."""
    span = argument.span
    column = span.column + 1 + offset
    return Span(span.file, span.line, column, span.line, column + 1)


def _flat(argument: ast.Argument) -> str:
    return "|".join(n.text for n in argument.names) if isinstance(argument, ast.Flags) else ""


def _check_target_argument(
    parameter: language.Parameter,
    argument: ast.Argument,
    kind: language.RuleKind,
    diag: Diagnostics,
) -> None:
    if isinstance(argument, ast.String):
        check_glob(argument, diag)
        return
    words = [n.text for n in argument.names]
    if len(words) != 1 or words[0] not in language.TARGET_WORDS:
        diag.add(
            "E0113",
            f"unknown target `{'|'.join(words)}`",
            argument.span,
            help="a target is `self`, `any` or the quoted path of an executable",
        )


def _check_flags_argument(
    parameter: language.Parameter,
    argument: ast.Argument,
    kind: language.RuleKind,
    diag: Diagnostics,
) -> None:
    flags = parameter.flag_set
    if isinstance(argument, ast.String):
        diag.add(
            "E0108",
            f"`{kind.name}` expects {flags.what} names here, not a string",
            argument.span,
            help=f"write names without quotes, joined with `|`, e.g. `{next(iter(flags.bits))}`",
        )
        return
    names = [n.text for n in argument.names]
    if "any" in names and len(names) > 1:
        diag.add(
            "E0112",
            "`any` already means every name",
            argument.span,
            help="write `any` alone or list the names",
        )
    for name in argument.names:
        if name.text != "any" and name.text not in flags.bits:
            diag.add(
                flags.unknown_code,
                f"unknown {flags.what} `{name.text}`",
                name.span,
                label=f"not {_article(flags.what)} {flags.what} of `{kind.name}`",
                help=_absorbed_flag_help(kind, name.text)
                or did_you_mean(nearest_names(name.text, flags.bits, limit=1))
                or (f"`{kind.name}` accepts {_listing(flags)}",),
            )


def _absorbed_flag_help(kind: language.RuleKind, name: str) -> tuple[str, ...]:
    """`ioctl(PATH, ioctl)`: the name is the flag of the kind this one absorbs."""
    absorbs = kind.absorbs
    if absorbs is None or name != absorbs.flag:
        return ()
    return (
        f"`{name}` is a flag of `{absorbs.kind}`: `{absorbs.kind}(PATH, {name})` grants every "
        f"command but the dangerous ones; `{kind.name}` names commands",
    )


def _article(noun: str) -> str:
    # "an IPC object kind": an initialism is read letter by letter.
    return "an" if noun[0] in "aeiouAEFHILMNORSX" else "a"


def _listing(flags: language.FlagSet) -> str:
    names = list(flags.bits)
    shown = ", ".join(f"`{n}`" for n in names[:12])
    return shown + (f" and {len(names) - 12} more" if len(names) > 12 else "") + " or `any`"


_CHECKERS = {
    language.Param.PATH: _check_path_argument,
    language.Param.TARGET: _check_target_argument,
    language.Param.FLAGS: _check_flags_argument,
}
