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
 * (its work for that access follows in the same system call), or an overlay among their
 * lower layers (which looks names up and reads files for the outer one with its own
 * mounter's credentials).  An overlay's upper layer, where it writes, cannot itself be an
 * overlay.
 */
#ifndef BPFBOX_OVERLAY_BPF_H
#define BPFBOX_OVERLAY_BPF_H

#include "state.bpf.h"

/* Whether `sb` is an overlay's. */
static __always_inline int is_overlay(struct super_block *sb)
{
	return BPF_CORE_READ(sb, s_magic) == OVERLAYFS_SUPER_MAGIC;
}

/* Overlayfs' private data of `sb`, or 0: not an overlay (any more: an unmounted one has no
 * root), or the kernel's BTF did not describe it when the profile was loaded (then its work is
 * checked as the thread's: fail closed). */
static __always_inline struct ovl_fs *overlay_of(struct super_block *sb)
{
	if (!bpf_core_field_exists(struct ovl_fs, creator_cred) ||
	    !bpf_core_field_exists(struct ovl_fs, layers) || !is_overlay(sb) || !BPF_CORE_READ(sb, s_root))
		return 0;
	return BPF_CORE_READ(sb, s_fs_info);
}

/* Note the overlay (if any) an allowed access of `t` reaches on `sb`, whose magic number is
 * `magic`.  The super block, not its credentials, is noted: credentials freed with an
 * unmounted overlay may be allocated again, as a process's own. */
static __always_inline void note_overlay(struct task_state *t, struct super_block *sb, unsigned long magic)
{
	if (magic == OVERLAYFS_SUPER_MAGIC)
		t->overlay_sb = (__u64)sb;
}

struct layer_search {
	struct ovl_layer *layers;
	__u64 creds;
	int found;
};

/* bpf_loop callback: whether lower layer i + 1 (layer 0 is the upper one, never an overlay)
 * is an overlay working with the credentials searched for.  The layers are an array of a
 * type whose size the kernel's BTF tells. */
static int lower_overlay_works(__u32 i, struct layer_search *search)
{
	struct ovl_layer *layer = (void *)search->layers + (i + 1) * bpf_core_type_size(struct ovl_layer);
	struct ovl_fs *ofs = overlay_of(BPF_CORE_READ(layer, mnt, mnt_sb));

	search->found = ofs && (__u64)BPF_CORE_READ(ofs, creator_cred) == search->creds;
	return search->found;
}

/* Whether `creds` are those of the overlay on `sb` (0: none) or of an overlay among its lower
 * layers, which looks names up and reads files for it with its own mounter's credentials.
 * One level is all there is: the kernel stacks file systems two deep at most
 * (FILESYSTEM_MAX_STACK_DEPTH), so an overlay in another's layers has none in its own. */
static __always_inline int overlay_works_as(struct super_block *sb, __u64 creds)
{
	struct ovl_fs *ofs = sb ? overlay_of(sb) : 0;
	struct layer_search search = { .creds = creds };
	unsigned int layers;

	if (!ofs)
		return 0;
	if ((__u64)BPF_CORE_READ(ofs, creator_cred) == creds)
		return 1;
	layers = BPF_CORE_READ(ofs, numlayer);
	if (layers < 2)
		return 0;
	search.layers = BPF_CORE_READ(ofs, layers);
	bpf_loop(layers - 1, lower_overlay_works, &search, 0);
	return search.found;
}

/* Whether the current thread runs with the credentials of the overlay it noted or of the one
 * its path walk is in (or of an overlay in their lower layers): overlayfs' own work.  It
 * overrides the thread's credentials, never its real ones: a thread running with its real
 * ones is its own.  A call of its own: its searches stay off the stack frame of the hooks,
 * which 6.1's verifier adds to those of the deepest calls below them (a learning event) under
 * its 512-byte limit. */
static __noinline int overlay_at_work(struct task_state *t)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 creds = (__u64)BPF_CORE_READ(task, cred);
	struct nameidata *walk;

	if (creds == (__u64)BPF_CORE_READ(task, real_cred))
		return 0;
	if (overlay_works_as((struct super_block *)t->overlay_sb, creds))
		return 1;
	walk = BPF_CORE_READ(task, nameidata);
	return walk && overlay_works_as(BPF_CORE_READ(walk, path.dentry, d_sb), creds);
}

#endif /* BPFBOX_OVERLAY_BPF_H */
