/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Overlayfs at work for a confined thread.  An access to an overlay's file is checked at the
 * overlay's path; overlayfs then does the work on its layers in the same thread, with the
 * credentials of the overlay's mounter in place of the thread's: copying a lower file up (its
 * data, owner, times and extended attributes, in a work directory only the mounter's
 * CAP_DAC_OVERRIDE enters), setting an attribute on the upper file, writing whiteouts.  Those
 * steps reach the capability and attribute hooks again, on paths no policy names and with
 * capabilities that are the mounter's, not the thread's: they are the overlay's, not the
 * thread's, to answer for.
 *
 * They are told apart by the credentials themselves: an overlay's are its own object
 * (ovl_fs.creator_cred), made at mount time and never a process's, so a thread runs with
 * them only inside overlayfs.  (Switched credentials alone would not do: io_uring runs a
 * request with a personality the process registered, in the process's thread, with the
 * process's own earlier capabilities.)  Which overlay's: the one the thread's path walk is
 * in (overlayfs looks a name up in its layers, reading their trusted.overlay.* attributes
 * with its mounter's CAP_SYS_ADMIN), or the one the thread's last allowed access reached
 * (its work for that access follows in the same system call).  An overlay's upper layer,
 * where it writes, cannot itself be an overlay.
 */
#ifndef BPFBOX_OVERLAY_BPF_H
#define BPFBOX_OVERLAY_BPF_H

#include "state.bpf.h"

/* The credentials overlayfs works with on `sb`, or 0: not an overlay (any more: an unmounted
 * one has no root), or the kernel's BTF did not describe them when the profile was loaded
 * (then its work is checked as the thread's: fail closed). */
static __always_inline __u64 overlay_creds(struct super_block *sb)
{
	struct ovl_fs *ofs;

	if (!bpf_core_field_exists(struct ovl_fs, creator_cred) ||
	    BPF_CORE_READ(sb, s_magic) != OVERLAYFS_SUPER_MAGIC || !BPF_CORE_READ(sb, s_root))
		return 0;
	ofs = BPF_CORE_READ(sb, s_fs_info);
	return (__u64)BPF_CORE_READ(ofs, creator_cred);
}

/* Note the overlay (if any) an allowed access of `t` reaches on `sb`.  The super block, not
 * its credentials, is noted: credentials freed with an unmounted overlay may be allocated
 * again, as a process's own. */
static __always_inline void note_overlay(struct task_state *t, struct super_block *sb)
{
	if (BPF_CORE_READ(sb, s_magic) == OVERLAYFS_SUPER_MAGIC)
		t->overlay_sb = (__u64)sb;
}

/* Whether the current thread runs with the credentials of the overlay its path walk is in or
 * of the one it noted: overlayfs' own work. */
static __always_inline int overlay_at_work(struct task_state *t)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 creds = (__u64)BPF_CORE_READ(task, cred);
	struct nameidata *walk = BPF_CORE_READ(task, nameidata);

	if (t->overlay_sb && creds == overlay_creds((struct super_block *)t->overlay_sb))
		return 1;
	return walk && creds == overlay_creds(BPF_CORE_READ(walk, path.dentry, d_sb));
}

#endif /* BPFBOX_OVERLAY_BPF_H */
