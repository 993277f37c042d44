"""The vocabulary of the policy language, in one table the checks and the lowering share.

Adding a rule kind means adding one `RuleKind` here (and its hooks in the template); the
check pass and the lowering dispatch on these tables and fail loudly on anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from . import abi


class Param(Enum):
    """What an argument position accepts."""

    PATH = "a path"
    TARGET = "a target (an executable path, `self` or `any`)"
    FLAGS = "names joined with `|`"


@dataclass(frozen=True)
class FlagSet:
    """The names a FLAGS argument may use, their bits, and the error code for a wrong name."""

    what: str  # "access flag", "signal"...: used in messages
    bits: dict[str, int]
    unknown_code: str
    implied: dict[str, tuple[str, ...]] | None = None

    def mask(self, names: list[str]) -> int:
        """The bit set of `names`; `any` is every name."""
        if "any" in names:
            names = list(self.bits)
        mask = 0
        for name in names:
            mask |= self.bits[name]
            for implied in (self.implied or {}).get(name, ()):
                mask |= self.bits[implied]
        return mask

    def names(self, mask: int) -> list[str]:
        """The names of the bits in `mask`, in table order."""
        return [name for name, bit in self.bits.items() if mask & bit]


def _numbered(numbers: dict[str, int]) -> dict[str, int]:
    return {name: 1 << number for name, number in numbers.items()}


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: Param
    flags: FlagSet | None = None
    default: str | None = None  # for an optional trailing parameter: its value when omitted


@dataclass(frozen=True)
class RuleKind:
    name: str
    parameters: tuple[Parameter, ...]

    @property
    def required(self) -> int:
        return sum(1 for p in self.parameters if p.default is None)

    @property
    def access(self) -> FlagSet:
        """The flag table of the last FLAGS parameter: what a request or a grant of this kind
        is made of (fs access flags, signals, capabilities, network operations...)."""
        flags = self.parameters[-1].flags
        assert flags is not None, f"rule kind {self.name} ends with a non-flag parameter"
        return flags

    def signature(self) -> str:
        parts = [p.name if p.default is None else f"{p.name}?" for p in self.parameters]
        return f"{self.name}({', '.join(parts)})"


FS_ACCESS = FlagSet("access flag", abi.FS_FLAGS, "E0102", abi.FS_IMPLIED)
PROC_ACCESS = FlagSet("access flag", abi.PROC_FLAGS, "E0102")
PTRACE_ACCESS = FlagSet("access flag", abi.PTRACE_FLAGS, "E0102")
NET_OPS = FlagSet("network operation", abi.NET_OPS, "E0102")
FAMILIES = FlagSet("address family", _numbered(abi.FAMILIES), "E0104")
SIGNALS = FlagSet("signal", _numbered(abi.SIGNALS), "E0105")
CAPABILITIES = FlagSet("capability", _numbered(abi.CAPABILITIES), "E0106")

RULE_KINDS = {
    kind.name: kind
    for kind in (
        RuleKind(
            "fs", (Parameter("PATH", Param.PATH), Parameter("ACCESS", Param.FLAGS, FS_ACCESS))
        ),
        RuleKind(
            "proc",
            (Parameter("TARGET", Param.TARGET), Parameter("ACCESS", Param.FLAGS, PROC_ACCESS)),
        ),
        RuleKind(
            "signal",
            (Parameter("TARGET", Param.TARGET), Parameter("SIGNALS", Param.FLAGS, SIGNALS)),
        ),
        RuleKind(
            "ptrace",
            (
                Parameter("TARGET", Param.TARGET),
                Parameter("ACCESS", Param.FLAGS, PTRACE_ACCESS, default="any"),
            ),
        ),
        RuleKind(
            "net",
            (
                Parameter("FAMILY", Param.FLAGS, FAMILIES),
                Parameter("OPS", Param.FLAGS, NET_OPS),
            ),
        ),
        RuleKind("cap", (Parameter("NAMES", Param.FLAGS, CAPABILITIES),)),
    )
}

#: Target words; anything else must be a quoted executable path.
TARGET_WORDS = ("self", "any")

#: Action directives.  `allow`, `deny` and `taint` decide; `audit` only adds logging.
DECISIONS = ("allow", "deny", "taint")
AUDIT = "audit"
#: Context directives: the rules hold only inside a call to the named function.
CONTEXTS = ("func", "kfunc")
DIRECTIVES = (*DECISIONS, AUDIT, *CONTEXTS)

FILE_ATTRIBUTES = ("profile", "include")
