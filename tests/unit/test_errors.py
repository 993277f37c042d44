"""Every error a command reports derives from one base and is reported the same way."""

from __future__ import annotations

import click
import pytest
from bpfbox.compiler import clang
from bpfbox.contract.errors import BpfboxError
from bpfbox.contract.metadata import MetadataError
from bpfbox.runtime import cli, hooks, kernel, libbpf, loader

REPORTED = [
    (clang.BuildError("clang failed"), 1),
    (clang.ClangMissing("no clang"), 2),
    (MetadataError("no metadata"), 1),
    (libbpf.LibbpfUnavailable("no libbpf"), 2),
    (libbpf.ConfigError("bad map"), 1),
    (kernel.KernelError("no BTF", "use a kernel with BTF"), 2),
    (hooks.HookAbiError("odd hook", "use a supported kernel"), 2),
    (loader.LoadFailure("cannot load", "unload first"), 1),
    (cli.UsageProblem("bad option", "see --help"), 2),
]


@pytest.mark.parametrize(("error", "status"), REPORTED, ids=lambda e: type(e).__name__)
def test_each_is_one_error_line_a_help_line_and_its_status(error, status, capsys):
    @click.command()
    def failing() -> None:
        raise error

    assert isinstance(error, BpfboxError)
    assert cli.run_click(failing, "bpfbox-run", []) == status
    err = capsys.readouterr().err.splitlines()
    assert err == [f"bpfbox-run: error: {error}", f"help: {error.help}"]
    assert error.help
