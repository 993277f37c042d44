"""LSM hooks whose prototype differs between supported kernels, or that only some kernels have.

A BPF LSM program reads its hook's arguments by position, so a program written for one
prototype misreads them on a kernel with another (6.3 put a `struct mnt_idmap *` in front of
`inode_setattr`'s dentry: read with 6.1's prototype, the idmap is taken for the dentry).  The
library therefore carries one program per prototype, and the runtime keeps the one whose
parameter types match the running kernel's `bpf_lsm_<hook>` in its BTF, disabling the others
before the load.  No match is a refusal naming the hook, never a guess.

Hooks marked optional exist only on some supported kernels; where the kernel lacks them, their
programs are not loaded and `bpfbox-run --check-kernel` says what is then not mediated.

Parameter types are spelled as `spell_type` in the runtime spells BTF types: qualifiers
(const, volatile, restrict) dropped, typedef names kept, `struct NAME *` for pointers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """One program of the library for one prototype of its hook."""

    program: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class HookAbi:
    """The prototypes of one LSM hook the library has a program for."""

    hook: str
    variants: tuple[Variant, ...]
    #: The first kernel series that has the hook (None: every supported kernel has it).
    since: str | None = None
    #: What goes unmediated on a kernel without the hook (optional hooks only).
    without: str = ""

    @property
    def optional(self) -> bool:
        return self.since is not None


_IDMAP = "struct mnt_idmap *"
_USERNS = "struct user_namespace *"
_DENTRY = "struct dentry *"
#: inode_setxattr after its first parameter: name, value, size, flags.
_SETXATTR_REST = (_DENTRY, "char *", "void *", "size_t", "int")


def _by_first_parameter(hook: str, rest: tuple[str, ...]) -> tuple[Variant, ...]:
    """The two variants of a hook whose first parameter was the mount's user namespace
    (5.12 to 6.2) and is its idmap (6.3+): same positions, different types."""
    return (
        Variant(f"bpfbox_{hook}_userns", (_USERNS, *rest)),
        Variant(f"bpfbox_{hook}_idmap", (_IDMAP, *rest)),
    )


#: Every hook of the library with more than one prototype or not on every supported kernel.
HOOKS: dict[str, HookAbi] = {
    h.hook: h
    for h in (
        HookAbi(
            "inode_setattr",
            (
                Variant("bpfbox_inode_setattr", (_DENTRY, "struct iattr *")),
                Variant("bpfbox_inode_setattr_idmap", (_IDMAP, _DENTRY, "struct iattr *")),
            ),
        ),
        HookAbi("inode_setxattr", _by_first_parameter("inode_setxattr", _SETXATTR_REST)),
        HookAbi("inode_removexattr", _by_first_parameter("inode_removexattr", (_DENTRY, "char *"))),
        HookAbi(
            "inode_set_acl",
            _by_first_parameter("inode_set_acl", (_DENTRY, "char *", "struct posix_acl *")),
            since="6.2",
            without="POSIX ACL changes go through inode_setxattr (which checks them) instead",
        ),
        HookAbi(
            "inode_remove_acl",
            _by_first_parameter("inode_remove_acl", (_DENTRY, "char *")),
            since="6.2",
            without="POSIX ACL removals go through inode_removexattr (which checks them) instead",
        ),
        HookAbi(
            "inode_get_acl",
            _by_first_parameter("inode_get_acl", (_DENTRY, "char *")),
            since="6.2",
            without="POSIX ACL reads go through inode_getxattr (which checks them) instead",
        ),
        HookAbi(
            "file_truncate",
            (Variant("bpfbox_file_truncate", ("struct file *",)),),
            since="6.2",
            without="ftruncate() and open(O_TRUNC) go through path_truncate (which checks them)",
        ),
        HookAbi(
            "userns_create",
            (Variant("bpfbox_userns_create", ("struct cred *",)),),
            since="6.1",
            without="creating a user namespace is allowed (userns rules decide nothing)",
        ),
    )
}


def variant_programs() -> frozenset[str]:
    """The program names of every variant (programs the runtime may disable)."""
    return frozenset(v.program for h in HOOKS.values() for v in h.variants)
