"""The vocabulary of the policy language, which the checks and the lowering share.

The rule kinds are the contract's registry (bpfbox.contract.kinds: adding a kind is one entry
there and its hooks in one C header); this module adds the words around them (targets,
directives, file attributes).  The check pass and the lowering dispatch on these tables and
fail loudly on anything else.
"""

from __future__ import annotations

from bpfbox.contract import abi
from bpfbox.contract.kinds import (
    CAPABILITIES,
    FAMILIES,
    FS_ACCESS,
    NET_OPS,
    PROC_ACCESS,
    PTRACE_ACCESS,
    REGISTRY,
    SIGNALS,
    FlagSet,
    Object,
    Param,
    Parameter,
    RuleKind,
)

__all__ = [
    "CAPABILITIES",
    "FAMILIES",
    "FS_ACCESS",
    "NET_OPS",
    "PROC_ACCESS",
    "PTRACE_ACCESS",
    "SIGNALS",
    "FlagSet",
    "Object",
    "Param",
    "Parameter",
    "RuleKind",
]

#: The rule kinds, by name: the contract's registry itself (bpfbox.contract.kinds).
RULE_KINDS = REGISTRY

#: Target words; anything else must be a quoted executable path.
TARGET_WORDS = ("self", "any")

#: Action directives.  `allow`, `deny` and `taint` decide; `audit` only adds logging.
DECISIONS = tuple(d.action for d in abi.Decision if d is not abi.Decision.NONE)
AUDIT = abi.Decision.NONE.action
#: Context directives: the rules hold only inside a call to the named function.
CONTEXTS = ("func", "kfunc")
DIRECTIVES = (*DECISIONS, AUDIT, *CONTEXTS)

FILE_ATTRIBUTES = ("profile", "include")
