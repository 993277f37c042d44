"""Hypothesis strategies for bpfbox policies: generated from the grammar, and mutated from
the golden corpus, with the hostile pieces the fuzzer once found the compiler choking on
(comment ends in paths, NUL escapes, deep nesting, include bombs, long names, many rules).

Every strategy draws text of at most MAX_INPUT_BYTES; the fragments includes may name live
in the directory `workspace()` prepares, next to the policy.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from bpfbox.compiler import language
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
#: The budget the compiler must meet: any input below this size compiles in under 2 s.
MAX_INPUT_BYTES = 100 * 1024

#: Paths and names that exist in the golden sysroot and the tiny BTF fixture, so that
#: generated policies get past symbol resolution often enough to reach the code generator.
PROFILES = ("/sbin/mylogin", "/sbin/mylogin-nopie", "/usr/bin/dupstatic", "/sbin/missing")
FUNCTIONS = ("check_password", "add_user", "main", "read_entry")
LIBRARY = "/usr/lib/libfixture.so"
KERNEL_FUNCTIONS = ("vfs_read", "vfs_write", "security_file_open", "do_sys_openat2")
#: Text that must never leak into the generated C unescaped.
#: Each is valid inside a policy string, so that the rule carrying it gets to the code generator.
HOSTILE_TEXT = ("*/", "/*", '\\"', "\\\\", "\\0", "\\x00", "\\n", "??/", "\\t", "é", "\\xff", "'")
#: Fragment files `workspace()` writes: name -> contents.
FRAGMENTS = {
    "rules.bpfbox": 'fs("/etc/hosts", read)\n#![include "base"]\n',
    "comment*/end.bpfbox": 'fs("/tmp/*/x", read)\n',
    "self.bpfbox": '#![include "self.bpfbox"]\n',
    **{
        f"bomb{level}.bpfbox": f'#![include "bomb{level + 1}.bpfbox"]\n' * 2
        + f'fs("/bomb/{level}", read)\n'
        for level in range(20)
    },
    "bomb20.bpfbox": 'fs("/bomb/end", read)\n',
}
INCLUDES = (
    "base",
    "nosuch",
    "rules.bpfbox",
    "comment*/end.bpfbox",
    "self.bpfbox",
    "bomb0.bpfbox",
    "fifo.bpfbox",
    "dir.bpfbox",
    "missing/x.bpfbox",
    "x" * 300 + ".bpfbox",
    "../" * 40 + "etc/passwd",
)


def workspace(directory: Path) -> None:
    """Write the fragments, a FIFO and a directory that generated includes name."""
    for name, text in FRAGMENTS.items():
        (directory / name).parent.mkdir(exist_ok=True)
        (directory / name).write_text(text)
    if not (directory / "fifo.bpfbox").exists():
        os.mkfifo(directory / "fifo.bpfbox")
    (directory / "dir.bpfbox").mkdir(exist_ok=True)


def _quoted(body: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return body.map(lambda text: f'"{text}"')


_good_piece = st.sampled_from(("etc", "tmp", "*", "**", "?", "[a-z]", "{a,b}", "x.so", "\\\\*"))
_path_piece = st.one_of(
    _good_piece,
    _good_piece,
    _good_piece,
    st.sampled_from(HOSTILE_TEXT),
    st.text(alphabet="abc/*?[]{}!,.-_", min_size=1, max_size=6),
)
paths = st.lists(_path_piece, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts))
identifiers = st.one_of(
    st.sampled_from(FUNCTIONS + KERNEL_FUNCTIONS),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
    st.sampled_from(HOSTILE_TEXT).map(lambda bad: f"check{bad}password"),
)


_FLAG_WORDS = sorted(
    {name for flags in (language.FS_ACCESS, language.NET_OPS) for name in flags.bits}
    | {"any", "self", "reed", "all"}
)
_random_rule = st.builds(
    lambda kind, args: f"{kind}({', '.join(args)})",
    st.sampled_from((*language.RULE_KINDS, "file", "caps")),
    st.lists(
        st.one_of(
            _quoted(paths),
            st.lists(st.sampled_from(_FLAG_WORDS), min_size=1, max_size=3).map("|".join),
        ),
        max_size=3,
    ),
)


def _argument(parameter: language.Parameter) -> st.SearchStrategy[str]:
    if parameter.kind is language.Param.PATH:
        return _quoted(paths)
    if parameter.kind is language.Param.TARGET:
        return st.one_of(
            st.sampled_from(language.TARGET_WORDS),
            _quoted(st.sampled_from(PROFILES)),
            _quoted(paths),
        )
    names = sorted(parameter.flags.bits)
    return st.lists(st.sampled_from(names), min_size=1, max_size=3).map("|".join)


@st.composite
def _well_formed_rule(draw) -> str:
    kind = language.RULE_KINDS[draw(st.sampled_from(sorted(language.RULE_KINDS)))]
    count = draw(st.integers(kind.required, len(kind.parameters)))
    args = [draw(_argument(p)) for p in kind.parameters[:count]]
    return f"{kind.name}({', '.join(args)})"


#: Mostly well-formed rules (to reach the code generator), sometimes any mix of arguments.
rules = st.one_of(_well_formed_rule(), _well_formed_rule(), _well_formed_rule(), _random_rule)
directives = st.one_of(
    st.sampled_from(("#[allow]", "#[deny]", "#[taint]", "#[audit]", "#[permit]")),
    identifiers.map(lambda name: f'#[func "{name}"]'),
    identifiers.map(lambda name: f'#[func "{name}" in "{LIBRARY}"]'),
    st.sampled_from(("/lib/x*/y.so", "relative.so", "/lib/a\\0b.so")).map(
        lambda library: f'#[func "main" in "{library}"]'
    ),
    identifiers.map(lambda name: f'#[kfunc "{name}"]'),
)
file_attributes = st.one_of(
    st.sampled_from(PROFILES).map(lambda p: f'#![profile "{p}"]'),
    st.sampled_from(("/sbin/my*/login", "/sbin/my\\0login", "sbin/mylogin")).map(
        lambda p: f'#![profile "{p}"]'
    ),
    st.sampled_from(INCLUDES).map(lambda name: f'#![include "{name}"]'),
    st.sampled_from(INCLUDES).map(lambda name: f'#![include "{name}"]'),
    st.sampled_from(INCLUDES).map(lambda name: f'#![include "{name}"]'),
)


def _items(depth: int) -> st.SearchStrategy[str]:
    item = st.one_of(rules, st.builds(lambda d, r: f"{d} {r}", directives, rules))
    if depth > 0:
        inner = st.lists(st.deferred(lambda: _items(depth - 1)), max_size=4).map("\n".join)
        block = st.builds(
            lambda ds, body: f"{' '.join(ds)} {{\n{body}\n}}",
            st.lists(directives, max_size=3),
            inner,
        )
        item = st.one_of(item, block)
    return item


@st.composite
def deep_nesting(draw) -> str:
    """Blocks and directives nested around the MAX_NESTING limit and far beyond it."""
    depth = draw(st.sampled_from((63, 64, 65, 200, 500, 2000)))
    opener = draw(st.sampled_from(("{ ", "#[allow] { ", '#[func "main"] #[deny] { ')))
    return '#![profile "/sbin/mylogin"]\n' + opener * depth + 'fs("/a", read)' + "}" * depth


@st.composite
def many_rules(draw) -> str:
    """Hundreds of allow and deny rules (the shadowing lint), or thousands of bad ones."""
    count = draw(st.sampled_from((100, 300, 3000)))
    bad = draw(st.booleans())
    lines = ['#![profile "/sbin/mylogin"]']
    size = len(lines[0])
    for index in range(count):
        if bad:
            line = f"fs(relative{index}, reed)"
        else:
            action = "deny" if index % 2 else "allow"
            line = f'#[{action}] fs("/data/{index % 37}/**/f{index}*", read|write)'
        size += len(line) + 1
        if size >= MAX_INPUT_BYTES:  # whole rules only: the input must parse
            break
        lines.append(line)
    return "\n".join(lines)


generated = st.builds(
    lambda profile, attributes, items: "\n".join([profile, *attributes, *items]),
    st.sampled_from(
        ('#![profile "/sbin/mylogin"]',) * 3 + ('#![profile "/sbin/mylogin-nopie"]', "")
    ),
    st.lists(
        st.one_of(
            st.sampled_from(("base", "rules.bpfbox", "comment*/end.bpfbox", "bomb0.bpfbox")).map(
                lambda name: f'#![include "{name}"]'
            ),
            file_attributes,
        ),
        max_size=2,
    ),
    st.lists(_items(3), max_size=5),
)


@cache
def corpus() -> tuple[str, ...]:
    """Every policy of the golden corpus, as text (undecodable bytes replaced)."""
    return tuple(
        path.read_bytes().decode("utf-8", errors="replace")
        for path in sorted(GOLDEN.glob("**/*.bpfbox"))
    )


_TOKENS = (
    "{",
    "}",
    "(",
    ")",
    ",",
    "|",
    '"',
    "#[",
    "#![",
    "]",
    "/*",
    "*/",
    "//",
    "\\",
    "\0",
    "\n",
    " in ",
    "\ufffd",
)


@st.composite
def mutated(draw) -> str:
    """A golden policy with a few random edits: cut, repeat, splice, insert tokens and
    grammar fragments, swap string literals for hostile ones."""
    texts = corpus()
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 4))):
        size = len(text)
        start = draw(st.integers(0, size))
        end = draw(st.integers(start, min(size, start + 200)))
        edit = draw(st.integers(0, 5))
        if edit == 0:
            text = text[:start] + text[end:]
        elif edit == 1:
            text = text[:end] + text[start:end] * draw(st.integers(2, 50)) + text[end:]
        elif edit == 2:
            text = text[:start] + draw(st.sampled_from(_TOKENS)) + text[start:]
        elif edit == 3:
            fragment = draw(st.one_of(rules, directives, file_attributes))
            text = text[:start] + fragment + text[start:]
        elif edit == 4:
            text = text[:start] + draw(st.sampled_from(texts)) + text[end:]
        else:
            text = text.replace('"', '"' + draw(st.sampled_from(HOSTILE_TEXT)), 1)
    return text[: MAX_INPUT_BYTES - 1]


@st.composite
def policies(draw) -> str:
    """Everything the fuzzer feeds bpfboxc: mostly generated and mutated policies, sometimes
    (one in fifty) the large, slow inputs of deep nesting and many rules."""
    choice = draw(st.integers(0, 99))
    if choice == 0:
        return draw(deep_nesting())
    if choice == 1:
        return draw(many_rules())
    return draw(generated if choice % 2 else mutated())
