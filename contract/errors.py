"""The one base of the errors bpfbox's commands report to their user (bpfboxc, bpfbox-run,
bpfbox): a message, what to do about it, and the exit status."""

from __future__ import annotations


class BpfboxError(Exception):
    """Reported as `PROG: error: MESSAGE` then `help: HELP`, exiting with `exit_code`: 1 for a
    profile or policy that cannot be used, 2 for the environment or the command line (each
    command's --help lists its statuses).  Subclasses set `exit_code` and a default `help`."""

    exit_code = 1
    help = "report it with the lines above"

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        if help is not None:
            self.help = help
