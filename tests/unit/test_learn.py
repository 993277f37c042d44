"""Unit tests of bpfbox-learn: symbolisation, path collapsing, the log reader, decisions,
drafts (checked with the real compiler) and suggestions (applied, then recompiled)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bpfbox.compiler import symbols
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.runtime.learn import draft as drafting
from bpfbox.runtime.learn import suggest as suggesting
from bpfbox.runtime.learn.cli import run_cli
from bpfbox.runtime.learn.decide import Request, allows
from bpfbox.runtime.learn.log import LOGGED_KINDS, Frame, LogError, read_logs
from bpfbox.runtime.learn.paths import MANY_SIBLINGS, Seen, collapse, literal
from bpfbox.runtime.learn.policy import compile_text

REPO = Path(__file__).resolve().parents[2]
ELF = REPO / "tests" / "fixtures" / "elf"
ROOT = REPO / "tests" / "golden" / "root"
GOLDEN = REPO / "tests" / "golden" / "learn"
RESOLVER = ElfResolver(sysroot=ROOT)
READ, WRITE = 1, 2


# Symbolisation: file offset -> enclosing function.


@pytest.mark.parametrize("binary", ["mylogin", "mylogin-nopie", "layout", "libfixture.so"])
def test_function_index_inverts_resolve_function(binary: str) -> None:
    """Every function's entry, middle and last byte map back to it, PIE or not."""
    index = symbols.function_index(ELF / binary)
    checked = 0
    for name in symbols.function_names(ELF / binary):
        found = symbols.resolve_function(ELF / binary, name)
        if found.size == 0 or name in index.ambiguous:
            continue
        for offset in (found.offset, found.offset + found.size // 2, found.offset + found.size - 1):
            assert index.function_at(offset) in _aliases(index, found.offset), (name, offset)
        checked += 1
    assert checked >= 3


def _aliases(index: symbols.FunctionIndex, offset: int) -> set[str]:
    return {name for start, name in zip(index.starts, index.names, strict=True) if start == offset}


def test_function_index_of_mylogin_matches_nm() -> None:
    """Offsets from `nm -n` of the fixture (PIE, file offset = address), written down."""
    index = symbols.function_index(ELF / "mylogin")
    assert index.build_id == "601914926d2f9c3b08d8c5e8e6205ca2fea7f229"
    assert index.function_at(0x14F9) == "check_password"
    assert index.function_at(0x1580) == "check_password"
    assert index.function_at(0x1581) == "add_user"
    assert index.function_at(0x1619) == "main"
    assert index.function_at(0x10) is None  # the ELF header is no function


def test_function_index_outside_any_function() -> None:
    index = symbols.function_index(ELF / "mylogin")
    assert index.function_at(index.ends[-1]) is None
    assert index.function_at(index.starts[0] - 1) is None


def test_function_index_of_stripped_program_uses_symbols_file() -> None:
    assert symbols.function_index(ELF / "mylogin-stripped").names == ()
    index = symbols.function_index(ELF / "mylogin-stripped", ELF / "mylogin.debug")
    assert index.function_at(0x1500) == "check_password"
    assert not index.has_symtab or index.names


def test_function_index_marks_ambiguous_names() -> None:
    index = symbols.function_index(ELF / "dupstatic")
    assert "helper" in index.ambiguous
    assert "only_in_a" not in index.ambiguous


def test_function_index_refuses_what_is_no_program(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.write_text("hello")
    with pytest.raises(symbols.NotElfError):
        symbols.function_index(text)


# Path collapsing.


def _collapse(paths: dict[str, int], pids: frozenset[int] = frozenset({1})) -> dict[str, str]:
    return collapse({path: Seen(mask, pids) for path, mask in paths.items()})


def test_literal_escapes_glob_characters() -> None:
    assert literal("/a*b?[c]{d,e}\\f") == "/a\\*b\\?\\[c\\]\\{d\\,e\\}\\\\f"


def test_mkstemp_names_of_two_runs_collapse_with_their_subtrees() -> None:
    result = _collapse(
        {"/tmp/app.Xa3b9Z": WRITE, "/tmp/app.q8W2mN": WRITE, "/tmp/app.q8W2mN/data": READ}
    )
    assert result == {
        "/tmp/app.Xa3b9Z": "/tmp/app.*",
        "/tmp/app.q8W2mN": "/tmp/app.*",
        "/tmp/app.q8W2mN/data": "/tmp/app.*/data",
    }


def test_mkstemp_without_separator() -> None:
    result = _collapse({"/tmp/sortAb12Cd": WRITE, "/tmp/sortXy98Zw": WRITE})
    assert set(result.values()) == {"/tmp/sort*"}


def test_a_lone_random_looking_name_stays() -> None:
    assert _collapse({"/tmp/app.Xa3b9Z": WRITE}) == {"/tmp/app.Xa3b9Z": "/tmp/app.Xa3b9Z"}


def test_words_are_not_random() -> None:
    """Six small letters (`passwd`, `shadow`) are words, not mkstemp suffixes."""
    result = _collapse({"/etc/passwd": READ, "/etc/shadow": READ})
    assert result == {"/etc/passwd": "/etc/passwd", "/etc/shadow": "/etc/shadow"}


def test_digit_runs_collapse() -> None:
    result = _collapse({"/sys/cpu/cpu0": READ, "/sys/cpu/cpu1": READ, "/sys/cpu/online": READ})
    assert result["/sys/cpu/cpu0"] == result["/sys/cpu/cpu1"] == "/sys/cpu/cpu[0-9]*"
    assert result["/sys/cpu/online"] == "/sys/cpu/online"


def test_a_name_with_the_pid_collapses_alone() -> None:
    result = collapse({"/var/log/app-412.log": Seen(WRITE, frozenset({412}))})
    assert result == {"/var/log/app-412.log": "/var/log/app-[0-9]*.log"}
    other = collapse({"/var/log/app-412.log": Seen(WRITE, frozenset({7}))})
    assert other == {"/var/log/app-412.log": "/var/log/app-412.log"}


def test_many_siblings_with_the_same_flags_become_a_star() -> None:
    names = [f"/usr/share/app/{chr(ord('a') + i)}x" for i in range(MANY_SIBLINGS)]
    result = _collapse({**{name: READ for name in names}, "/usr/share/app/conf": WRITE})
    assert {result[name] for name in names} == {"/usr/share/app/*"}
    assert result["/usr/share/app/conf"] == "/usr/share/app/conf"


def test_fewer_siblings_stay() -> None:
    names = [f"/usr/share/app/{chr(ord('a') + i)}x" for i in range(MANY_SIBLINGS - 1)]
    assert all(path == glob for path, glob in _collapse(dict.fromkeys(names, READ)).items())


def test_siblings_with_entries_below_them_are_not_starred() -> None:
    paths = {f"/srv/{chr(ord('a') + i)}x/f": READ for i in range(MANY_SIBLINGS)}
    assert all(path == glob for path, glob in _collapse(paths).items())


def test_root_entries_are_never_starred() -> None:
    paths = {f"/{chr(ord('a') + i)}x": READ for i in range(MANY_SIBLINGS)}
    assert all(path == glob for path, glob in _collapse(paths).items())


# The learning-log reader.


RUN = {"record": "run", "version": 1, "profile": "/sbin/mylogin", "command": ["mylogin"]}
ACCESS = {
    "record": "access",
    "kind": "fs",
    "object": "/etc/passwd",
    "access": ["read"],
    "family": None,
    "target_pid": None,
    "pid": 1,
    "tid": 1,
    "comm": "mylogin",
    "exe": "/sbin/mylogin",
    "stack": [{"build_id": "ab", "offset": 16}, {"ip": 4096}],
    "stack_error": None,
}


def _log(tmp_path: Path, *records) -> Path:
    path = tmp_path / "run.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_log_reads_runs_and_accesses(tmp_path: Path) -> None:
    runs, accesses = read_logs([_log(tmp_path, RUN, ACCESS, "", RUN, ACCESS)])
    assert [r.index for r in runs] == [0, 1]
    assert [a.run.index for a in accesses] == [0, 1]
    assert accesses[0].stack[0].build_id == "ab" and accesses[0].stack[1].ip == 4096
    # Logs written before the stack scan have no `scanned`.
    assert accesses[0].scanned is None
    scanned = {**ACCESS, "scanned": [{"build_id": "ab", "offset": 16, "callee": 8}]}
    _, (access,) = read_logs([_log(tmp_path, RUN, scanned)])
    assert access.scanned == (Frame(build_id="ab", offset=16, callee=8),)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ((ACCESS,), ":1: an access record before any run record"),
        (("{",), ":1: it is not valid JSON"),
        (("[" * 100_000,), ":1: it nests 100000 levels deep"),
        ((RUN, {**ACCESS, "kind": "file"}), ":2: `kind` is 'file', not a rule kind"),
        (
            (RUN, {**ACCESS, "kind": "ioctl", "access": ["tcgets"]}),
            ":2: `kind` 'ioctl' is not in learning logs of version 1",
        ),
        (
            (RUN, {**ACCESS, "access": ["reed"]}),
            ":2: `access` must be a non-empty list of fs " 'access flags; ["reed"] are not',
        ),
        ((RUN, {k: v for k, v in ACCESS.items() if k != "pid"}), ":2: field `pid` is missing"),
        (({**RUN, "version": 2},), ":1: learning log version 2"),
        ((RUN, {**ACCESS, "object": "etc/passwd"}), ":2: field `object` must be an absolute"),
        (
            (RUN, {**ACCESS, "kind": "net", "access": ["connect"], "family": "inet7"}),
            ":2: `family` 'inet7'",
        ),
        ((RUN, {**ACCESS, "stack": [{"build_id": "AB", "offset": 1}]}), ":2: stack[0]: `build_id`"),
        ((RUN, {**ACCESS, "scanned": {"offset": 1}}), ":2: field `scanned` must be list or null"),
        (
            (RUN, {**ACCESS, "scanned": [{"build_id": "ab", "offset": 1, "callee": -1}]}),
            ":2: scanned[0]: `callee` must be a non-negative integer",
        ),
        ((RUN, {**ACCESS, "pid": True}), ":2: field `pid` must be int, not true"),
        (({"record": "other"},), ":1: `record` is 'other'"),
    ],
)
def test_log_errors_say_where(tmp_path: Path, records, message: str) -> None:
    with pytest.raises(LogError) as error:
        read_logs([_log(tmp_path, *records)])
    assert message in str(error.value)
    assert str(tmp_path / "run.jsonl") in str(error.value)


def test_every_kind_a_log_records_has_a_heading_in_drafts() -> None:
    # The reader refuses the other kinds: a draft would have nowhere to put their rules.
    assert set(LOGGED_KINDS) == set(drafting._HEADINGS)


def test_a_log_without_runs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no run record"):
        read_logs([_log(tmp_path, "")])


# Decisions on the IR.


def _program(body: str):
    text = f'#![profile "/sbin/mylogin"]\n{body}\n'
    return compile_text(text, "test.bpfbox", None, RESOLVER).program


def test_decide_follows_the_semantics() -> None:
    program = _program(
        'fs("/etc/*", read)\n#[deny] fs("/etc/shadow", any)\n'
        '#[func "check_password"] fs("/etc/passwd", append)\n'
        'proc(self, read)\nsignal("/usr/bin/*", sigterm)\nnet(inet|unix, connect)\ncap(chown)'
    )
    fs = Request("fs", READ, path="/etc/passwd")
    assert allows(program, fs)
    assert not allows(program, Request("fs", READ, path="/etc/shadow"))  # deny wins
    assert not allows(program, Request("fs", READ, path="/etc/a/b"))  # `*` stops at `/`
    append = Request("fs", 4, path="/etc/passwd")
    assert not allows(program, append)
    assert allows(program, append, frozenset({"check_password"}))
    assert not allows(program, Request("fs", READ | 4, path="/etc/x"), frozenset({"main"}))
    assert allows(program, Request("proc", READ, target="/sbin/mylogin", target_is_self=True))
    assert not allows(program, Request("proc", READ, target="/usr/bin/x"))
    assert allows(program, Request("signal", 1 << 15, target="/usr/bin/kill"))
    assert not allows(program, Request("signal", 1 << 9, target="/usr/bin/kill"))
    assert allows(program, Request("net", 2, family="unix"))
    assert not allows(program, Request("net", 2, family="inet6"))
    assert allows(program, Request("cap", 1))
    assert not allows(program, Request("cap", 2))


# Drafts, compiled with the real compiler.


def _draft(case: str) -> str:
    runs, accesses = read_logs(sorted((GOLDEN / case).glob("*.jsonl")))
    return drafting.draft(runs, accesses, RESOLVER)


def test_mylogin_draft_scopes_to_functions_and_denies_peek() -> None:
    program = compile_text(_draft("mylogin"), "d.bpfbox", None, RESOLVER).program
    assert {c.symbol for c in program.contexts} == {"check_password", "add_user"}
    shadow = Request("fs", READ, path="/etc/shadow")
    assert allows(program, shadow, frozenset({"check_password", "main"}))
    # `mylogin peek` reads the shadow file in main(), outside both functions.
    assert not allows(program, shadow, frozenset({"main"}))
    assert not allows(program, Request("fs", 4, path="/etc/shadow"), frozenset({"check_password"}))
    # The loader's accesses are left to `base`, which grants them.
    assert "ld.so.cache" not in _draft("mylogin")


def test_one_run_cannot_tell_functions_apart(tmp_path: Path) -> None:
    """With only `check`, check_password is on every stack: it tells nothing."""
    runs, accesses = read_logs([GOLDEN / "mylogin" / "1-check.jsonl"])
    text = drafting.draft(runs, accesses, RESOLVER)
    assert '#[func "check_password"]' not in text
    assert 'fs("/etc/passwd", read)' in text


def test_draft_of_a_stripped_program_says_why_it_has_no_scopes(tmp_path: Path) -> None:
    runs, accesses = read_logs(sorted((GOLDEN / "mylogin").glob("*.jsonl")))
    stripped = [_with_profile(a, "/sbin/mylogin-stripped") for a in accesses]
    text = drafting.draft(
        [r.__class__(r.index, "/sbin/mylogin-stripped", r.command, r.where) for r in runs],
        stripped,
        RESOLVER,
    )
    assert "is stripped and no --symbols file was given" in text
    assert "#[func" not in text
    with_symbols = ElfResolver(sysroot=ROOT, symbols_file=ELF / "mylogin.debug")
    text = drafting.draft(
        [r.__class__(r.index, "/sbin/mylogin-stripped", r.command, r.where) for r in runs],
        stripped,
        with_symbols,
    )
    assert '#[func "check_password"]' in text
    comments = " ".join(line.removeprefix("// ") for line in text.splitlines())
    assert f"compile with `bpfboxc --symbols {ELF / 'mylogin.debug'}`" in comments


def _with_profile(access, profile: str):
    run = access.run.__class__(access.run.index, profile, access.run.command, access.run.where)
    exe = profile if access.exe == "/sbin/mylogin" else access.exe
    return access.__class__(**{**access.__dict__, "run": run, "exe": exe})


def test_draft_refuses_mixed_profiles_and_missing_programs(tmp_path: Path) -> None:
    runs, accesses = read_logs(sorted((GOLDEN / "mylogin").glob("*.jsonl")))
    other = runs[0].__class__(9, "/usr/bin/dupstatic", (), "x:1")
    with pytest.raises(drafting.LearnError, match="choose one with --profile"):
        drafting.draft([*runs, other], accesses, RESOLVER)
    text = drafting.draft([*runs, other], accesses, RESOLVER, profile="/sbin/mylogin")
    assert '#![profile "/sbin/mylogin"]' in text
    with pytest.raises(drafting.LearnError, match="cannot be confined"):
        drafting.draft(runs, accesses, ElfResolver(sysroot=tmp_path))


# Suggestions: applied, the policy compiles and allows the denial.


NARROW = GOLDEN / "suggest" / "learn_narrow.bpfbox"


def test_every_suggestion_allows_its_denials_once_applied(tmp_path: Path) -> None:
    policy = tmp_path / NARROW.name
    text = NARROW.read_text()
    policy.write_text(text)
    events = NARROW.with_suffix(".events.jsonl")
    profile = compile_text(text, policy.name, policy, RESOLVER).program.profile
    denials = suggesting.read_denials(events, policy.name, profile, RESOLVER)
    found = suggesting.suggest(text, policy, RESOLVER, denials)
    assert found.changes
    before = compile_text(text, policy.name, policy, RESOLVER).program
    after = compile_text(
        suggesting.apply_changes(text, found.changes), policy.name, policy, RESOLVER
    ).program
    for change in found.changes:
        for denial in change.denials:
            assert not allows(before, denial.request, change.functions)
            assert allows(after, denial.request, change.functions)


def test_apply_asks_for_each_edit(tmp_path: Path, monkeypatch, capsys) -> None:
    policy = tmp_path / NARROW.name
    policy.write_text(NARROW.read_text())
    events = NARROW.with_suffix(".events.jsonl")
    monkeypatch.setattr("sys.stdin", _Lines("maybe\ny\n"))
    status = run_cli(
        ["suggest", "--apply", "--log", str(events), "--sysroot", str(ROOT), str(policy)]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "please answer y or n" in out
    assert "applied 1 of" in out
    assert policy.read_text() != NARROW.read_text()
    compile_text(policy.read_text(), policy.name, policy, RESOLVER)


class _Lines:
    """Standard input holding `text` (then the end of the input)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)

    def readline(self) -> str:
        return self.lines.pop(0) if self.lines else ""


def _event(policy: str, access: list[str], obj: str, reason: str, rule_id: int | None) -> dict:
    return {
        "event": "deny",
        "policy": policy,
        "rule_kind": "fs",
        "access": access,
        "object": obj,
        "family": None,
        "reason": reason,
        "rule": None if rule_id is None else {"id": rule_id},
        "message": f"denied mylogin[1] {','.join(access)} {obj}",
    }


def _suggest(tmp_path: Path, policy_text: str, *events: dict) -> tuple[str, str]:
    """The policy after every suggested change, and the printed diffs."""
    policy = tmp_path / "p.bpfbox"
    policy.write_text(policy_text)
    log = tmp_path / "ev.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    profile = compile_text(policy_text, policy.name, policy, RESOLVER).program.profile
    denials = suggesting.read_denials(log, policy.name, profile, RESOLVER)
    found = suggesting.suggest(policy_text, policy, RESOLVER, denials)
    diffs = "".join(
        suggesting.diff(policy_text, suggesting.apply_changes(policy_text, [c]), "p.bpfbox")
        for c in found.changes
    )
    return suggesting.apply_changes(policy_text, found.changes), diffs


def test_partial_grant_adds_the_flag_inside_the_func_block(tmp_path: Path) -> None:
    text = '#![profile "/sbin/mylogin"]\n#[func "add_user"] {\n    fs("/etc/passwd", read)\n}\n'
    event = _event("p.bpfbox", ["read", "append"], "/etc/passwd", "partial_grant", 1)
    after, diffs = _suggest(tmp_path, text, event)
    assert after == text.replace("read)", "read|append)")
    assert '-    fs("/etc/passwd", read)\n+    fs("/etc/passwd", read|append)' in diffs


def test_no_rule_goes_into_the_top_level_allow_block(tmp_path: Path) -> None:
    text = '#![profile "/sbin/mylogin"]\n#[allow] {\n    fs("/etc/hosts", read)\n}\n// end\n'
    after, _ = _suggest(
        tmp_path,
        text,
        _event("p.bpfbox", ["read"], "/etc/a*b", "no_rule", None),
        _event("p.bpfbox", ["write"], "/etc/a*b", "no_rule", None),
    )
    assert after == (
        '#![profile "/sbin/mylogin"]\n#[allow] {\n    fs("/etc/hosts", read)\n'
        "    // added by bpfbox-learn: denied 2 times (no_rule)\n"
        '    fs("/etc/a\\\\*b", read|write)\n}\n// end\n'
    )


def test_counts_of_repeats_are_denials_too(tmp_path: Path) -> None:
    """bpfbox-run --reduce-repeats: a line stands for itself and the repeats it counts; a
    count still pending when the reader stopped (no acting task) for its repeats only."""
    text = '#![profile "/sbin/mylogin"]\nfs("/etc/hosts", read)\n'
    reported = {**_event("p.bpfbox", ["write"], "/etc/a", "no_rule", None), "repeats": 40}
    pending = {**reported, "pid": None, "repeats": 2}
    after, _ = _suggest(tmp_path, text, reported, pending)
    assert "// added by bpfbox-learn: denied 43 times (no_rule)" in after
    with pytest.raises(suggesting.SuggestError, match="`repeats` is not a count"):
        _suggest(tmp_path, text, {**reported, "repeats": -1})


def test_no_rule_adds_flags_to_a_rule_for_the_same_path(tmp_path: Path) -> None:
    text = '#![profile "/sbin/mylogin"]\nfs("/etc/hosts", read)\n'
    after, _ = _suggest(
        tmp_path, text, _event("p.bpfbox", ["getattr", "write"], "/etc/hosts", "no_rule", None)
    )
    assert after == '#![profile "/sbin/mylogin"]\nfs("/etc/hosts", read|write)\n'


def test_no_rule_of_the_ipc_key_and_ioctl_kinds(tmp_path: Path) -> None:
    text = '#![profile "/sbin/mylogin"]\nipc(shm, create)\n'
    ipc = {**_event("p.bpfbox", ["read"], "shm", "no_rule", None), "rule_kind": "ipc"}
    key = {**_event("p.bpfbox", ["search"], None, "no_rule", None), "rule_kind": "key"}
    ioctl = _event("p.bpfbox", ["tiocgwinsz"], "/dev/pts/3", "no_rule", None)
    after, _ = _suggest(tmp_path, text, ipc, key, {**ioctl, "rule_kind": "ioctl"})
    assert "ipc(shm, create|read)" in after
    assert "key(search)" in after
    assert 'ioctl("/dev/pts/3", tiocgwinsz)' in after


def test_a_user_namespace_denial_suggests_a_userns_rule(tmp_path: Path) -> None:
    text = '#![profile "/sbin/mylogin"]\nfs("/etc/hosts", read)\n'
    userns = {**_event("p.bpfbox", ["create"], None, "no_rule", None), "rule_kind": "userns"}
    after, _ = _suggest(tmp_path, text, userns)
    assert after.endswith("userns(create)\n")


def test_suggest_refuses_events_of_an_older_policy(tmp_path: Path) -> None:
    text = '#![profile "/sbin/mylogin"]\nfs("/etc/hosts", read)\n'
    event = _event("p.bpfbox", ["write"], "/etc/hosts", "partial_grant", 1)
    event["rule"]["text"] = 'fs("/etc/passwd", read)'
    with pytest.raises(suggesting.SuggestError, match="changed since the events were recorded"):
        _suggest(tmp_path, text, event)


@pytest.mark.parametrize(
    ("reason", "access", "path"),
    [("denied_by_rule", "read", "/etc/shadow"), ("guards_beneath", "rm", "/etc")],
)
def test_suggest_leaves_explicit_denies_alone(
    tmp_path: Path, capsys, reason: str, access: str, path: str
) -> None:
    policy = tmp_path / "deny.bpfbox"
    policy.write_text('#![profile "/sbin/mylogin"]\n#[deny] fs("/etc/shadow", read)\n')
    events = tmp_path / "ev.jsonl"
    event = {
        "event": "deny",
        "policy": "deny.bpfbox",
        "rule_kind": "fs",
        "access": [access],
        "object": path,
        "family": None,
        "reason": reason,
        "rule": {"id": 1},
        "message": "denied mylogin[1] read /etc/shadow",
    }
    events.write_text(json.dumps(event) + "\n")
    status = run_cli(["suggest", "--log", str(events), "--sysroot", str(ROOT), str(policy)])
    err = capsys.readouterr().err
    assert status == 0
    assert "line 2 of deny.bpfbox denies it explicitly" in err
    assert "no edit to propose" in err


# The command line: errors are messages with an exit status, never tracebacks.


def test_cli_reports_a_bad_log(tmp_path: Path, capsys) -> None:
    bad = _log(tmp_path, RUN, {**ACCESS, "access": []})
    assert run_cli(["draft", str(bad), "--sysroot", str(ROOT)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bpfbox-learn: error: ") and "run.jsonl:2" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("command", "what"), [("draft", "a learning log"), ("suggest", "an event log")]
)
def test_cli_refuses_a_fifo_log_without_blocking(
    tmp_path: Path, capsys, command: str, what: str
) -> None:
    fifo = tmp_path / "log.jsonl"
    os.mkfifo(fifo)
    policy = tmp_path / "p.bpfbox"
    policy.write_text('#![profile "/sbin/mylogin"]\nfs("/etc/hosts", read)\n')
    argv = [str(fifo)] if command == "draft" else ["--log", str(fifo), str(policy)]
    assert run_cli([command, *argv, "--sysroot", str(ROOT)]) == 2
    err = capsys.readouterr().err
    assert err == f"bpfbox-learn: error: {what} `{fifo}` is a FIFO, not a regular file\n"


def test_cli_cuts_a_huge_field_in_its_message(tmp_path: Path, capsys) -> None:
    """A message quoting a log's field of a megabyte shows its two ends."""
    huge = _log(tmp_path, RUN, {**ACCESS, "pid": "9" * 1_000_000})
    assert run_cli(["draft", str(huge), "--sysroot", str(ROOT)]) == 1
    err = capsys.readouterr().err
    assert "field `pid` must be int, not" in err and "..." in err and len(err) < 400


def test_cli_reports_a_missing_program(tmp_path: Path, capsys) -> None:
    log = _log(tmp_path, RUN, ACCESS)
    assert run_cli(["draft", str(log), "--sysroot", str(tmp_path)]) == 2
    assert "cannot be confined" in capsys.readouterr().err


def test_cli_usage(capsys) -> None:
    assert run_cli(["draft"]) == 2
    assert "Missing argument" in capsys.readouterr().err
    assert run_cli([]) == 2
    assert capsys.readouterr().err.startswith("Usage: bpfbox-learn")


def test_cli_writes_the_draft(tmp_path: Path) -> None:
    out = tmp_path / "app.bpfbox"
    logs = [str(p) for p in sorted((GOLDEN / "mylogin").glob("*.jsonl"))]
    assert run_cli(["draft", *logs, "-o", str(out), "--sysroot", str(ROOT)]) == 0
    assert out.read_text() == (GOLDEN / "mylogin" / "draft.bpfbox").read_text()


def test_a_command_line_cannot_write_rules_into_the_draft(tmp_path: Path) -> None:
    """The draft's header quotes each run's command line in a comment: a newline there (any
    argument the recorded program was given) must not end the comment."""
    forged = '\n#[allow] fs("/**", any)\u2028#[allow] fs("/**", any)'
    runs, accesses = read_logs([_log(tmp_path, {**RUN, "command": ["mylogin", forged]}, ACCESS)])
    text = drafting.draft(runs, accesses, RESOLVER)
    assert "mylogin \\x0a#[allow]" in text and "\\u2028#[allow]" in text
    program = compile_text(text, "d.bpfbox", None, RESOLVER).program
    assert not allows(program, Request("fs", READ, path="/etc/shadow"), frozenset({"main"}))


def test_draft_for_a_real_distribution_program(tmp_path: Path) -> None:
    """This machine's /usr/bin/cat (stripped, dynamically linked), with sysroot `/`."""
    cat = Path("/usr/bin/cat").resolve()
    if not cat.is_file():
        pytest.skip("no /usr/bin/cat")
    run = {**RUN, "profile": str(cat), "command": [str(cat), "/srv/data/a.txt"]}

    def access(path: str, flags: list[str]) -> dict:
        return {**ACCESS, "object": path, "access": flags, "exe": str(cat), "stack": None}

    records = [
        run,
        access("/etc/ld.so.cache", ["read"]),
        access("/usr/lib/x86_64-linux-gnu/libc.so.6", ["read"]),
        access("/usr/lib/x86_64-linux-gnu/libc.so.6", ["exec"]),
        access("/usr/lib/locale/locale-archive", ["read"]),
        access("/srv/data/a.txt", ["read"]),
    ]
    runs, accesses = read_logs([_log(tmp_path, *records)])
    resolver = ElfResolver()
    text = drafting.draft(runs, accesses, resolver)
    assert "is stripped" in text or "No recorded stack" in text
    program = compile_text(text, "cat.bpfbox", None, resolver).program
    assert allows(program, Request("fs", READ, path="/srv/data/a.txt"))
    assert allows(program, Request("fs", READ, path="/etc/ld.so.cache"))
    assert not allows(program, Request("fs", READ, path="/srv/data/b.txt"))
    assert not allows(program, Request("fs", WRITE, path="/srv/data/a.txt"))


def test_cli_suggest_on_a_policy_with_errors(tmp_path: Path, capsys) -> None:
    policy = tmp_path / "p.bpfbox"
    policy.write_text('#![profile "/sbin/mylogin"]\nfs("/etc/hosts", reed)\n')
    log = tmp_path / "ev.jsonl"
    log.write_text(json.dumps(_event("p.bpfbox", ["read"], "/etc/x", "no_rule", None)) + "\n")
    assert run_cli(["suggest", "--log", str(log), "--sysroot", str(ROOT), str(policy)]) == 1
    err = capsys.readouterr().err
    assert "does not compile cleanly" in err and "error[E0102]" in err


def test_flags_merge_per_path_and_scope(tmp_path: Path) -> None:
    """A scoped rule keeps only what the unscoped rule for the same path does not grant."""
    build_id = symbols.function_index(ELF / "mylogin").build_id
    in_main = [{"build_id": build_id, "offset": 0x16F0}]
    in_check = [{"build_id": build_id, "offset": 0x1530}, *in_main]

    def access(flags: list[str], stack: list[dict]) -> dict:
        return {**ACCESS, "object": "/etc/x", "access": flags, "stack": stack}

    records = [
        RUN,
        access(["read"], in_main),
        access(["read"], in_check),
        access(["append"], in_check),
        access(["write"], in_check),
    ]
    runs, accesses = read_logs([_log(tmp_path, *records)])
    text = drafting.draft(runs, accesses, RESOLVER)
    top, scoped = text.split('#[func "check_password"]')
    assert 'fs("/etc/x", read)  // seen 1 time in 1 run' in top
    assert 'fs("/etc/x", write)  // seen 3 times in 1 run' in scoped  # write implies append
    runs, accesses = read_logs([_log(tmp_path, *records[:3])])
    text = drafting.draft(runs, accesses, RESOLVER)
    assert "#[func" not in text  # the unscoped rule grants all the function needed
    assert 'fs("/etc/x", read)  // seen 2 times in 1 run' in text
