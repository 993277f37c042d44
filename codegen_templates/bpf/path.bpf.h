/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Path resolution: walk from a dentry to the root, crossing mount points, and write the path
 * backwards into the task's scratch buffer (struct scratch).  The same walker serves every
 * hook (file, path, dentry-only) and the executables of target processes.
 */
#ifndef BPFBOX_PATH_BPF_H
#define BPFBOX_PATH_BPF_H

#include "state.bpf.h"

/* WALK_INTERNAL: the object lives on a kernel-internal mount (pipes, sockets, anonymous
 * inodes, memfds, overlayfs' private clones of its layers), which no process reaches by a path.
 * WALK_DETACHED: on a mount no rule can name for this process: a lazily unmounted tree, a
 * mount of another mount namespace, a dentry disconnected from its file system's tree.
 * WALK_MQUEUE: inside the walk only, at the root of an mqueue file system (below). */
enum { WALK_OK = 0, WALK_TOO_LONG = 1, WALK_DETACHED = 2, WALK_INTERNAL = 3, WALK_MQUEUE = 4 };

/* fs/mount.h: the mnt_ns of the kernel's own mounts (kern_mount, clone_private_mount), the
 * same ERR_PTR(-EINVAL) in 6.1 and 6.12. */
#define MNT_NS_INTERNAL ((struct mnt_namespace *)-22L)

/* 32 bytes, so that resolve_path's frame stays one verifier stack slot of 32: a learning
 * event resolves the acting task's executable from verdict(), five calls deep, and the
 * verifier allows 512 bytes for all frames together.  The offset the path is written at is
 * the scratch's `start`, in its map rather than here on the stack: kernels before 6.8 verify
 * a bpf_loop callback once, from its context as it is at the call, and would have taken the
 * walk's first offset there for a constant, dropping the length check as dead code. */
struct walk {
	struct scratch *s;
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	__u32 status;
};

/* The root mount of the task's mount namespace: where a walk may end. */
static __always_inline struct mount *namespace_root(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return BPF_CORE_READ(task, nsproxy, mnt_ns, root);
}

static __always_inline struct mount *real_mount(struct vfsmount *vfsmnt)
{
	return (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
}

/* A walk that cannot reach the process's root: internal, or detached (fail closed). */
static __always_inline __u32 unreachable(struct mount *mnt)
{
	return BPF_CORE_READ(mnt, mnt_ns) == MNT_NS_INTERNAL ? WALK_INTERNAL : WALK_DETACHED;
}

/* POSIX message queues live in an mqueue file system that each IPC namespace mounts
 * internally (where no path leads) and that may also be mounted, conventionally at
 * /dev/mqueue.  Wherever it is reached from, its root is named /dev/mqueue, so that one rule
 * names a queue however it is opened (mq_open or a path).  The walk only stops there
 * (WALK_MQUEUE); resolve_path writes the name after the loop: a callback that moved the
 * offset by a second, constant step would keep the verifiers of 6.7 and later (which verify
 * a bpf_loop callback until its states converge) from ever converging. */
#define MQUEUE_MAGIC 0x19800202
#define MQUEUE_ROOT "/dev/mqueue"

static __always_inline __u32 name_mqueue_root(struct scratch *s)
{
	__u32 len = sizeof(MQUEUE_ROOT) - 1, off = s->start;

	if (off < PATH_BUF - PATH_MAX_LEN + len || off > PATH_BUF - 1)
		return WALK_TOO_LONG;
	off -= len;
	__builtin_memcpy(&s->path[path_index(off)], MQUEUE_ROOT, sizeof(MQUEUE_ROOT) - 1);
	s->start = off;
	return WALK_OK;
}

static long walk_step(__u32 index, void *data)
{
	struct walk *w = data;
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	struct dentry *root = BPF_CORE_READ(vfsmnt, mnt_root);
	struct scratch *s = w->s;
	__u32 len, off;

	if (!s)
		return 1;
	if (dentry == parent && BPF_CORE_READ(dentry, d_sb, s_magic) == MQUEUE_MAGIC) {
		w->status = WALK_MQUEUE;
		return 1;
	}
	if (dentry == root) {
		struct mount *mnt = real_mount(vfsmnt);
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

		if (up == mnt) {
			/* The top of a mount tree: the namespace's root, or a mount no path of
			 * this process leads to. */
			if (mnt != namespace_root())
				w->status = unreachable(mnt);
			return 1;
		}
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->vfsmnt = (void *)up + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	if (dentry == parent) {
		/* A root that is not the mount's: the pseudo dentry of a pipe or socket on an
		 * internal mount, or a dentry disconnected from its tree (no rule names it). */
		w->status = unreachable(real_mount(vfsmnt));
		return 1;
	}
	len = BPF_CORE_READ(dentry, d_name.len);
	off = s->start;
	if (len > NAME_MAX || off < PATH_BUF - PATH_MAX_LEN + len + 1) {
		w->status = WALK_TOO_LONG;
		return 1;
	}
	off -= len;
	if (off > PATH_BUF - 2)
		return 1;
	bpf_probe_read_kernel(&s->path[path_index(off)], name_length(len), BPF_CORE_READ(dentry, d_name.name));
	off -= 1;
	s->path[path_index(off)] = '/';
	s->start = off;
	w->dentry = parent;
	return 0;
}

/* Resolve (mnt, dentry) into the scratch buffer; sets s->start.  Returns a WALK_ status. */
static __noinline int resolve_path(struct scratch *s, struct vfsmount *mnt, struct dentry *dentry)
{
	struct walk w = {
		.s = s,
		.dentry = dentry,
		.vfsmnt = mnt,
	};

	if (!s)
		return WALK_TOO_LONG;
	s->path[PATH_BUF - 1] = 0;
	s->start = PATH_BUF - 1;
	if (bpf_loop(WALK_STEPS, walk_step, &w, 0) == WALK_STEPS && w.status == WALK_OK)
		w.status = WALK_TOO_LONG;
	if (w.status == WALK_MQUEUE)
		w.status = name_mqueue_root(s);
	if (s->start == PATH_BUF - 1) {
		s->start -= 1;
		s->path[PATH_BUF - 2] = '/';
	}
	return w.status;
}

#endif /* BPFBOX_PATH_BPF_H */
