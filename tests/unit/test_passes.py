"""Unit tests of the passes: spans, directive accumulation, lowering, pipeline stopping."""

from __future__ import annotations

import pytest
from bpfbox.compiler import ast
from bpfbox.compiler.pipeline import (
    PASSES,
    Compilation,
    PipelineError,
    check_pass,
    codegen_pass,
    compiler_pass,
    include_pass,
    lower_pass,
    parse_pass,
    pipeline,
)
from bpfbox.contract import abi

from .helpers import codes, compile_text, front_end

PROFILE = '#![profile "/sbin/mylogin"]\n'


def test_every_node_carries_the_span_of_its_source() -> None:
    c = compile_text(PROFILE + '#[deny]\nfs("/etc/shadow", read|write)\n', (parse_pass,))
    directed = c.policy.items[1]
    rule = directed.body
    assert (directed.span.line, directed.span.column) == (2, 1)
    assert (rule.span.line, rule.span.column, rule.span.end_column) == (3, 1, 30)
    assert rule.args[1].names[1].text == "write"
    assert (rule.args[1].names[1].span.column, rule.args[1].names[1].span.end_column) == (24, 29)


def test_string_escapes_are_decoded() -> None:
    c = compile_text(PROFILE + "fs('/etc/it\\'s\\x41', read)\n", (parse_pass,))
    assert c.policy.items[1].args[0].value == "/etc/it'sA"


def test_innermost_decision_wins_and_audit_accumulates() -> None:
    c = front_end(
        PROFILE + '#[audit]\n#[deny] {\n  fs("/a", read)\n  #[allow] fs("/b", read)\n}\n'
        '#[audit] fs("/c", read)\nfs("/d", read)\n'
    )
    decisions = [(r.path, r.decision, r.audit) for r in c.program.rules]
    assert decisions == [
        ("/a", abi.Decision.DENY, True),
        ("/b", abi.Decision.ALLOW, True),
        ("/c", abi.Decision.NONE, True),
        ("/d", abi.Decision.ALLOW, False),
    ]


def test_contexts_are_one_clause_per_block_and_any_of_within_one() -> None:
    c = front_end(
        PROFILE + '#[func "check_password"]\n#[func "add_user"] {\n'
        '  #[kfunc "vfs_read"] fs("/a", read)\n}\n#[func "add_user"] fs("/b", read)\n'
    )
    first, second = c.program.rules
    assert [x.symbol for x in c.program.contexts] == ["check_password", "add_user", "vfs_read"]
    assert first.contexts == ((0, 1), (2,))
    assert second.contexts == ((1,),)


def test_flag_sets_implications_and_any_is_everything() -> None:
    c = front_end(PROFILE + 'fs("/a", write)\nfs("/b", any)\nptrace(self)\nfs("/c", getattr)\n')
    write, every, ptrace, getattr = c.program.rules
    flags = abi.FS_FLAGS
    assert write.flags == flags["write"] | flags["append"] | flags["getattr"]
    assert getattr.flags == flags["getattr"]
    assert every.flags == sum(abi.FS_FLAGS.values())
    assert ptrace.flags == sum(abi.PTRACE_FLAGS.values())


def test_includes_are_transparent_for_rules_and_keep_their_own_file_names() -> None:
    c = front_end(PROFILE + '#![include "base"]\nfs("/etc/motd", read)\n')
    files = {r.span.file for r in c.program.rules}
    assert files == {"<bpfbox>/base.bpfbox", "test.bpfbox"}
    assert c.program.rules[-1].path == "/etc/motd"


def test_the_pipeline_stops_after_the_first_pass_with_errors() -> None:
    # An unknown flag (check pass) and an unknown function (resolve pass): only the first shows.
    c = compile_text(PROFILE + '#[func "nope"] fs("/a", reed)\n')
    assert codes(c) == ["E0102"]
    assert c.resolved is None and c.c_source is None


def test_all_errors_of_one_pass_are_reported_together() -> None:
    c = compile_text(PROFILE + 'fs("/a", reed)\ncap(chwon)\nnet(inet7, connect)\n')
    assert codes(c) == ["E0102", "E0106", "E0104"]


def test_passes_have_one_job_each_and_are_listed_in_order() -> None:
    names = [p.name for p in PASSES]
    assert names == [
        "parse_pass",
        "include_pass",
        "check_pass",
        "resolve_pass",
        "lower_pass",
        "lint_pass",
        "codegen_pass",
    ]
    assert all(p.run.__doc__ and "->" in p.run.__doc__ for p in PASSES)


def test_a_pipeline_whose_pass_reads_what_none_before_produced_is_refused() -> None:
    with pytest.raises(PipelineError, match="pass lower_pass reads resolved, which no earlier"):
        pipeline(parse_pass, lower_pass)
    with pytest.raises(PipelineError, match="pass codegen_pass reads program"):
        run_pipeline = (parse_pass, include_pass, codegen_pass)
        compile_text(PROFILE, run_pipeline)
    assert pipeline(parse_pass, include_pass, check_pass) == (parse_pass, include_pass, check_pass)


def test_a_pass_can_only_name_fields_of_the_compilation() -> None:
    with pytest.raises(PipelineError, match=r"pass typo_pass names \['polcy'\]"):

        @compiler_pass(reads="polcy")
        def typo_pass(c: Compilation) -> None:
            """polcy -> nothing"""


def test_directed_rules_walks_blocks_includes_and_directives() -> None:
    c = compile_text(
        PROFILE + '#![include "base"]\n#[deny] { { fs("/x", read) } }\n',
        (parse_pass, include_pass, check_pass),
    )
    rules = list(ast.directed_rules(c.policy.items))
    last_rule, chain = rules[-1]
    assert last_rule.args[0].value == "/x"
    assert [[d.name.text for d in ds] for ds in chain] == [["deny"]]
    assert len(rules) > 10


def test_unknown_words_without_a_near_name_list_the_vocabulary() -> None:
    c = front_end(PROFILE + "#[qqqqqq] zzzzzz(a)\n")
    helps = {d.code: d.help for d in c.diagnostics.items}
    assert helps["E0103"] == (
        "directives are `allow`, `deny`, `taint`, `audit`, `func` and `kfunc`",
    )
    assert helps["E0101"][0].startswith("rule kinds are `fs`, `proc`")
