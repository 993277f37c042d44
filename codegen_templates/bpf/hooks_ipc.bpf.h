/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inter-process communication: SysV shared memory, semaphores and message queues (ipc
 * rules; docs/language.md maps each hook to its operation), and the creation and removal of
 * POSIX message queues (fs rules on /dev/mqueue/NAME), which reach only inode hooks.
 */
#ifndef BPFBOX_HOOKS_IPC_BPF_H
#define BPFBOX_HOOKS_IPC_BPF_H

#include "checks.bpf.h"

/* ipc.h, shm.h, sem.h, msg.h (UAPI) */
#define IPC_RMID 0
#define IPC_SET 1
#define IPC_STAT 2
#define IPC_INFO 3
#define SHM_RDONLY 010000
#define SHM_STAT 13
#define SHM_INFO 14
#define SHM_STAT_ANY 15
#define GETPID 11
#define GETZCNT 15
#define SETVAL 16
#define SETALL 17
#define SEM_STAT 18
#define SEM_INFO 19
#define SEM_STAT_ANY 20
#define MSG_STAT 11
#define MSG_INFO 12
#define MSG_STAT_ANY 13

struct kern_ipc_perm;
struct msg_msg;
struct sembuf;

static __noinline int check_ipc(struct task_state *t, __u32 class, __u64 req)
{
	struct decision d = {};
	struct object o = { .kind = RULE_IPC, .number = class };

	if (!t)
		return 0;
	decide_ipc(t, &d, req, class);
	return verdict(t, &d, RULE_IPC, req, &o);
}

static __always_inline int check_current(__u32 class, __u64 req)
{
	struct task_state *t = confined_current();

	return t ? check_ipc(t, class, req) : 0;
}

/* The operation of a shmctl/semctl/msgctl command: statistics and limits (the *_INFO
 * commands have no object) are `getattr`; reading or setting semaphore values `read` and
 * `write`; changing or removing the object (IPC_SET, IPC_RMID, SHM_LOCK...) and any command
 * not known here `control`. */
static __always_inline __u64 ctl_operation(__u32 class, int cmd)
{
	if (cmd == IPC_STAT || cmd == IPC_INFO)
		return IPC_GETATTR;
	if (class == IPC_CLASS_SHM && cmd >= SHM_STAT && cmd <= SHM_STAT_ANY)
		return IPC_GETATTR;
	if (class == IPC_CLASS_SEM && cmd >= SEM_STAT && cmd <= SEM_STAT_ANY)
		return IPC_GETATTR;
	if (class == IPC_CLASS_SEM && cmd >= GETPID && cmd <= GETZCNT)
		return IPC_READ;
	if (class == IPC_CLASS_SEM && (cmd == SETVAL || cmd == SETALL))
		return IPC_WRITE;
	if (class == IPC_CLASS_MSG && cmd >= MSG_STAT && cmd <= MSG_STAT_ANY)
		return IPC_GETATTR;
	return IPC_CONTROL;
}

SEC("lsm/shm_alloc_security")
int BPF_PROG(bpfbox_shm_alloc_security, struct kern_ipc_perm *perm)
{
	return check_current(IPC_CLASS_SHM, IPC_CREATE);
}

SEC("lsm/sem_alloc_security")
int BPF_PROG(bpfbox_sem_alloc_security, struct kern_ipc_perm *perm)
{
	return check_current(IPC_CLASS_SEM, IPC_CREATE);
}

SEC("lsm/msg_queue_alloc_security")
int BPF_PROG(bpfbox_msg_queue_alloc_security, struct kern_ipc_perm *perm)
{
	return check_current(IPC_CLASS_MSG, IPC_CREATE);
}

SEC("lsm/shm_associate")
int BPF_PROG(bpfbox_shm_associate, struct kern_ipc_perm *perm, int shmflg)
{
	return check_current(IPC_CLASS_SHM, IPC_GET);
}

SEC("lsm/sem_associate")
int BPF_PROG(bpfbox_sem_associate, struct kern_ipc_perm *perm, int semflg)
{
	return check_current(IPC_CLASS_SEM, IPC_GET);
}

SEC("lsm/msg_queue_associate")
int BPF_PROG(bpfbox_msg_queue_associate, struct kern_ipc_perm *perm, int msqflg)
{
	return check_current(IPC_CLASS_MSG, IPC_GET);
}

SEC("lsm/shm_shmat")
int BPF_PROG(bpfbox_shm_shmat, struct kern_ipc_perm *perm, char *shmaddr, int shmflg)
{
	return check_current(IPC_CLASS_SHM, (shmflg & SHM_RDONLY) ? IPC_READ : IPC_READ | IPC_WRITE);
}

SEC("lsm/sem_semop")
int BPF_PROG(bpfbox_sem_semop, struct kern_ipc_perm *perm, struct sembuf *sops, unsigned int nsops, int alter)
{
	return check_current(IPC_CLASS_SEM, alter ? IPC_WRITE : IPC_READ);
}

SEC("lsm/msg_queue_msgsnd")
int BPF_PROG(bpfbox_msg_queue_msgsnd, struct kern_ipc_perm *perm, struct msg_msg *msg, int msqflg)
{
	return check_current(IPC_CLASS_MSG, IPC_WRITE);
}

/* Is `task` (with state t) enforced: confined, and tainted when the policy has taint rules? */
static __always_inline int enforced(struct task_struct *task, struct task_state *t)
{
	struct task_state *leader;

	if (!TAINT_MODE || t->tainted)
		return 1;
	leader = state_of(task->group_leader);
	return leader && leader->tainted;
}

/* The receiver is `target`: the task receiving itself, or a waiting receiver to which a
 * sender hands the message directly.  In the second case the receiver's rules decide, without
 * an event: a refused hand-over leaves the message in the queue, where the receiver's own
 * receive is checked (and logged). */
SEC("lsm/msg_queue_msgrcv")
int BPF_PROG(bpfbox_msg_queue_msgrcv, struct kern_ipc_perm *perm, struct msg_msg *msg, struct task_struct *target,
	     long type, int mode)
{
	struct task_state *t = state_of(target);
	struct decision d = {};

	if (!t || !t->confined)
		return 0;
	if (target == bpf_get_current_task_btf())
		return check_ipc(t, IPC_CLASS_MSG, IPC_READ);
	if (CFG_COMPLAIN || !enforced(target, t))
		return 0;
	decide_ipc(t, &d, IPC_READ, IPC_CLASS_MSG);
	return (d.deny & IPC_READ) || !(d.allow & IPC_READ) ? -EPERM : 0;
}

SEC("lsm/shm_shmctl")
int BPF_PROG(bpfbox_shm_shmctl, struct kern_ipc_perm *perm, int cmd)
{
	return check_current(IPC_CLASS_SHM, ctl_operation(IPC_CLASS_SHM, cmd));
}

SEC("lsm/sem_semctl")
int BPF_PROG(bpfbox_sem_semctl, struct kern_ipc_perm *perm, int cmd)
{
	return check_current(IPC_CLASS_SEM, ctl_operation(IPC_CLASS_SEM, cmd));
}

SEC("lsm/msg_queue_msgctl")
int BPF_PROG(bpfbox_msg_queue_msgctl, struct kern_ipc_perm *perm, int cmd)
{
	return check_current(IPC_CLASS_MSG, ctl_operation(IPC_CLASS_MSG, cmd));
}

/* ---- POSIX message queues: mq_open creates with vfs_mkobj and mq_unlink removes with
 * vfs_unlink, below the path hooks; opening one is file_open's.  The path walk names every
 * queue /dev/mqueue/NAME (path.bpf.h).  Other file systems' creations and removals are the
 * path hooks'. ---- */

static __always_inline int on_mqueue(struct inode *dir)
{
	return BPF_CORE_READ(dir, i_sb, s_magic) == MQUEUE_MAGIC;
}

SEC("lsm/inode_create")
int BPF_PROG(bpfbox_inode_create, struct inode *dir, struct dentry *dentry, unsigned short mode)
{
	struct task_state *t;

	if (!on_mqueue(dir))
		return 0;
	t = confined_current();
	return t ? check_fs(t, 0, dentry, FS_CREATE, 0) : 0;
}

SEC("lsm/inode_unlink")
int BPF_PROG(bpfbox_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	struct task_state *t;

	if (!on_mqueue(dir))
		return 0;
	t = confined_current();
	return t ? check_fs(t, 0, dentry, FS_RM, 0) : 0;
}

#endif /* BPFBOX_HOOKS_IPC_BPF_H */
