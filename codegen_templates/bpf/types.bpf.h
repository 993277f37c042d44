/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types: fixed-width integers, libbpf's helpers, UAPI constants and the kernel types this
 * program reads.  The kernel types are local definitions with preserve_access_index (only the
 * fields read), relocated by libbpf against the running kernel's BTF at load time, so neither
 * vmlinux.h nor kernel or libc headers are needed.
 */
#ifndef BPFBOX_TYPES_BPF_H
#define BPFBOX_TYPES_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* UAPI constants (linux/bpf.h, errno, fcntl, mman): defined here so that no kernel or
 * libc header is needed to compile this file. */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
	BPF_F_NO_PREALLOC = 1,
	BPF_LOCAL_STORAGE_GET_F_CREATE = 1,
	BPF_NOEXIST = 1, /* bpf_map_update_elem: only a new key */
};
/* bpf_ringbuf_submit flags and bpf_ringbuf_query questions. */
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
	BPF_RB_RING_SIZE = 1,
};
#define EPERM 1
/* bpf_get_task_stack flags: the user stack, each frame as build ID and file offset. */
#define BPF_F_USER_STACK (1ULL << 8)
#define BPF_F_USER_BUILD_ID (1ULL << 11)
#define PAGE_SIZE 4096 /* x86-64's, the only architecture the program is built for */
#define AT_NULL 0
#define AT_ENTRY 9
#define ENOMEM 12
#define EFAULT 14
#define FMODE_READ 0x1
#define FMODE_WRITE 0x2
#define FMODE_EXEC 0x20
#define __FMODE_EXEC 0x20 /* the same bit among the open flags: kernel-only, never from open(2) */
#define FMODE_NOACCOUNT 0x20000000
#define O_TRUNC 01000
#define O_APPEND 02000
#define PROT_EXEC 0x4
#define RENAME_EXCHANGE 0x2
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define CLONE_THREAD 0x00010000
#define PF_IO_WORKER 0x00000010 /* task_struct.flags: an io_uring worker (io-wq, SQPOLL) */
#define PTRACE_MODE_READ 0x01
#define PTRACE_MODE_ATTACH 0x02
#define LSM_PRLIMIT_READ 1 /* include/linux/security.h */
#define LSM_PRLIMIT_WRITE 2
#define ATTR_SIZE 0x8
#define ATTR_ATIME 0x10
#define ATTR_MTIME 0x20
#define ATTR_ATIME_SET 0x80
#define ATTR_MTIME_SET 0x100
#define ATTR_TIMES (ATTR_ATIME | ATTR_MTIME | ATTR_ATIME_SET | ATTR_MTIME_SET)
#define PROC_SUPER_MAGIC 0x9fa0
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define SOCKFS_MAGIC 0x534F434B
#define BPF_FS_MAGIC 0xcafe4a11
#define PROT_WRITE 0x2
#define MAP_TYPE 0x0f
#define MAP_PRIVATE 0x02
#define VM_MAYSHARE 0x80
#define MAY_WRITE 0x2
#define MAY_READ 0x4
#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define F_SETFL 4
#define F_SETOWN 8
#define F_SETOWN_EX 15
#define F_WRLCK 1
#define F_OWNER_TID 0
#define F_OWNER_PID 1
#define RWF_NOAPPEND 0x20
/* x86-64 system call numbers: the writes that honour O_APPEND (see hooks_fs.bpf.h). */
#define NR_write 1
#define NR_pwrite64 18
#define NR_writev 20
#define NR_sendfile 40
#define NR_splice 275
#define NR_pwritev 296
#define NR_copy_file_range 326
#define NR_pwritev2 328

/* Kernel types: only the fields this program reads. */
struct qstr { __u32 len; const unsigned char *name; } __attribute__((preserve_access_index));
struct list_head { struct list_head *next; } __attribute__((preserve_access_index));
struct super_block {
	__u32 s_dev;
	unsigned long s_magic;
	struct list_head s_mounts;
	struct dentry *s_root;
	void *s_fs_info;
} __attribute__((preserve_access_index));
struct inode {
	unsigned short i_mode;
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));
struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
} __attribute__((preserve_access_index));
struct vfsmount { struct dentry *mnt_root; struct super_block *mnt_sb; int mnt_flags; } __attribute__((preserve_access_index));
/* Overlayfs' private type (fs/overlayfs/ovl_entry.h), in the overlay module's BTF where it is
 * a module (Debian's): libbpf relocates it against that BTF, found only if the module is
 * loaded when the profile is. */
struct ovl_layer { struct vfsmount *mnt; } __attribute__((preserve_access_index));
struct ovl_fs {
	unsigned int numlayer;
	struct ovl_layer *layers;
	const struct cred *creator_cred;
} __attribute__((preserve_access_index));
struct mnt_namespace;
struct mount {
	struct mount *mnt_parent;
	struct mnt_namespace *mnt_ns;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
	struct list_head mnt_instance;
} __attribute__((preserve_access_index));
/* After 6.12 a super block's mounts are no longer a list_head through mnt_instance but a list
 * through the mounts themselves, newest first (7.3: s_mounts, mnt_next_for_sb).  The
 * flavors (libbpf drops the ___ suffix) let one object read whichever the kernel has. */
struct super_block___mount_chain { struct mount *s_mounts; } __attribute__((preserve_access_index));
struct mount___mount_chain { struct mount *mnt_next_for_sb; } __attribute__((preserve_access_index));
struct path { struct vfsmount *mnt; struct dentry *dentry; } __attribute__((preserve_access_index));
struct fs_struct { struct path root; struct path pwd; } __attribute__((preserve_access_index));
/* A path walk in progress (fs/namei.c): `path` is the directory it is at. */
struct nameidata { struct path path; } __attribute__((preserve_access_index));
struct mnt_namespace { struct mount *root; } __attribute__((preserve_access_index));
struct nsproxy { struct mnt_namespace *mnt_ns; } __attribute__((preserve_access_index));
struct file {
	struct path f_path;
	struct inode *f_inode;
	__u32 f_mode;
	unsigned int f_flags;
	void *private_data;
} __attribute__((preserve_access_index));
struct xol_area { unsigned long vaddr; } __attribute__((preserve_access_index));
struct uprobes_state { struct xol_area *xol_area; } __attribute__((preserve_access_index));
struct mm_struct {
	struct file *exe_file;
	struct uprobes_state uprobes_state;
	unsigned long saved_auxv[2]; /* AT_VECTOR_SIZE words; CO-RE matches the element type */
} __attribute__((preserve_access_index));
struct hlist_node { struct hlist_node *next; } __attribute__((preserve_access_index));
struct hlist_head { struct hlist_node *first; } __attribute__((preserve_access_index));
struct pid { struct hlist_head tasks[4]; } __attribute__((preserve_access_index));
struct cred;
struct task_struct {
	int pid;
	int tgid;
	unsigned int flags;
	struct task_struct *group_leader;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	const struct cred *real_cred;
	const struct cred *cred;
	struct fs_struct *fs;
	struct nsproxy *nsproxy;
	struct nameidata *nameidata;
	unsigned int in_execve:1;
	struct hlist_node pid_links[4];
} __attribute__((preserve_access_index));
struct proc_inode { struct pid *pid; struct inode vfs_inode; } __attribute__((preserve_access_index));
struct linux_binprm { struct file *file; } __attribute__((preserve_access_index));
struct vm_area_struct { unsigned long vm_flags; struct file *vm_file; } __attribute__((preserve_access_index));
struct iattr { unsigned int ia_valid; } __attribute__((preserve_access_index));
struct sock_common { unsigned short skc_family; } __attribute__((preserve_access_index));
struct sock { struct sock_common __sk_common; } __attribute__((preserve_access_index));
struct socket { struct sock *sk; } __attribute__((preserve_access_index));
/* unix_sk(): the sock is the first member of struct unix_sock. */
struct unix_sock { struct path path; } __attribute__((preserve_access_index));
/* x86-64 only: the user registers saved at system call entry (the stack pointer for
 * function contexts, the system call number and its sixth argument for O_APPEND writes). */
struct pt_regs { unsigned long sp; unsigned long r9; unsigned long orig_ax; } __attribute__((preserve_access_index));
struct f_owner_ex { int type; int pid; };
struct sockaddr;
union bpf_attr;
struct msghdr;
struct kernel_siginfo;
struct user_namespace;
struct mnt_idmap;
struct posix_acl;

#endif /* BPFBOX_TYPES_BPF_H */
