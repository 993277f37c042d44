// SPDX-License-Identifier: GPL-2.0
/*
 * probe: one multi-call program that end-to-end tests run under bpfbox policies.
 *
 *   probe OP [OP...]
 *
 * Runs each operation in order and prints one line per operation: `ok`, or the name of
 * the errno it failed with (`EPERM`, `EACCES`, `ENOENT`, ...).  Exit status 0 when every
 * operation ran (whatever its result), 2 for a malformed operation (message on stderr).
 * Fields are separated by `:`, so paths must not contain one.
 *
 * Files
 *   open:MODE:PATH          open and close; MODE r, w, a (append), rw, ra (read+append),
 *                           wt and rwt (w and rw with O_TRUNC), ac (a with O_CREAT: `>>`)
 *   openat-dirfd:DIR:NAME:MODE   open DIR, then NAME relative to it
 *   create:PATH             create a new file (O_CREAT|O_EXCL)
 *   reopen-fd:PATH          open PATH read-only, then reopen it via /proc/self/fd/N
 *   read:PATH               open read-only and read up to 4 KiB
 *   write:PATH:TEXT         open write-only (truncating) and write TEXT
 *   stat:PATH               stat
 *   readlink:PATH           read a symbolic link's target
 *   fstat:PATH              open with O_PATH (which no rule governs), then the fstat
 *                           system call: a getattr that does not go through vfs_statx
 *   chmod:PATH:MODE         chmod, MODE in octal
 *   chown:PATH:UID:GID      chown (-1 leaves one unchanged)
 *   utime:PATH              set times to now
 *   truncate:PATH           truncate to 0 bytes
 *   mkdir:PATH   rmdir:PATH   unlink:PATH
 *   link:OLD:NEW   symlink:TARGET:NEW   rename:OLD:NEW
 *   ioctl:PATH              FIONREAD on the opened file
 *   readdir:DIR             list the directory
 *   exec:PATH[,ARG...]      fork, execv PATH with the given arguments (argv[0] is PATH),
 *                           wait; `ok` when execv succeeded, whatever the program did
 *   exec-with:PATH          fork, execv PATH with all remaining operations as its
 *                           arguments (a probe runs them), wait; then as exec
 *   mmap-exec:PATH          map the file's first page PROT_READ|PROT_EXEC
 *   unappend:PATH           open with O_APPEND, clear it with fcntl(F_SETFL), pwrite at 0;
 *                           the first failure's errno
 *   punch:PATH              open with O_APPEND, fallocate(PUNCH_HOLE) the first byte
 *   mmap-shared:PATH        open O_RDWR|O_APPEND, map the first page shared and writable,
 *                           and write to it
 *   mprotect-shared:PATH    open O_RDWR|O_APPEND, map the first page shared and read-only,
 *                           then mprotect it writable
 *   noappend:PATH           open with O_APPEND, pwritev2 at 0 with RWF_NOAPPEND
 *   append:PATH:TEXT        open with O_APPEND and write TEXT
 *   copy-range:FROM:TO      open FROM read-only, TO with O_APPEND; copy_file_range 1 byte to
 *                           offset 0 of TO
 *   setxattr:PATH:NAME      set the extended attribute NAME (system.posix_acl_access: a
 *                           valid ACL that grants the file's mode; others: the value "x")
 *   removexattr:PATH:NAME   remove the extended attribute NAME
 *   getxattr:PATH:NAME      read the extended attribute NAME (ENODATA: it has none)
 *   listxattr:PATH          list the extended attributes' names
 *   uring-getxattr:PATH:NAME     getxattr as one io_uring operation (run by an io-wq worker)
 *   uring-getxattr-as:PATH:NAME  the same with a personality registered before the process's
 *                           credentials change: the worker runs it with them switched in, as
 *                           overlayfs runs its own reads of a layer
 *   openat-fd:FD:NAME       open NAME read-only relative to the inherited descriptor FD
 *   sendfile-fd:FD:PATH     open PATH read-only, sendfile one byte from it to descriptor FD
 *   write-fd:FD             write one byte to the inherited descriptor FD
 *   read-fd:FD              read up to 64 bytes from the inherited descriptor FD
 *   ftruncate-fd:FD         truncate the file of the inherited descriptor FD to 0 bytes
 *   inotify:PATH            add an inotify watch on PATH
 *   flock:PATH              open read-only and take an exclusive lock (LOCK_EX|LOCK_NB)
 *   flock-shared:PATH       open read-only and take a shared lock (LOCK_SH|LOCK_NB)
 *
 * Processes
 *   kill:PID:SIG            kill(PID, SIG); SIG is a number or a name (TERM, SIGTERM, 0)
 *   kill-self:SIG           catch SIG, then send it to ourselves
 *   fork                    run all remaining operations in a child; after the child's
 *                           lines, print `ok` if it exited 0, else `exit N` or `signal N`
 *   thread                  run all remaining operations in a new thread, then print `ok`
 *   forever                 run all remaining operations again and again, until killed
 *   ptrace-attach:PID       PTRACE_ATTACH, wait for the stop, PTRACE_DETACH
 *   ptrace-read:PID         read /proc/PID/environ (a PTRACE_MODE_READ access)
 *   proc-mem:PID            open /proc/PID/mem (a PTRACE_MODE_ATTACH access)
 *   proc-mem-write:PID      open /proc/PID/mem for writing
 *   vm-write:PID            process_vm_writev one byte to address 0 of PID: EFAULT once
 *                           the access check let it through
 *   sleep:MS                sleep MS milliseconds
 *   sigio:PID:SIG           make a pipe's owner PID (F_SETOWN; `self`: our own) with F_SETSIG
 *                           SIG and O_ASYNC, then write to the pipe: the kernel sends SIG to
 *                           PID; the errno of the first failing step
 *   sigio-ex:PID            F_SETOWN_EX (F_OWNER_PID) on a pipe; `self` as for sigio
 *   tiocsti:TEXT            make standard input our controlling terminal (setsid, TIOCSCTTY),
 *                           then push TEXT into its input queue with TIOCSTI
 *   bpf-obj-get:PATH        the bpf() system call: BPF_OBJ_GET of the pin at PATH
 *   mount-tmpfs:DIR         mount a tmpfs on DIR (and unmount it)
 *   umount:DIR              unmount what is mounted on DIR
 *   move-mount:FROM:TO      clone the mount at FROM (open_tree) and attach it at TO
 *                           (move_mount); the errno of the first failing step
 *   pivot-root:DIR          in a mount namespace of its own, pivot_root(DIR, DIR): DIR
 *                           must be a mount point; nothing outside the probe changes
 *   renice:PID              setpriority(PRIO_PROCESS, PID, 19); PID `self`: getpid()
 *                           (as for the operations below), 0: the calling thread
 *   ioprio:PID              ioprio_set: the lowest best-effort I/O priority
 *   setaffinity:PID         sched_setaffinity: CPU 0 only
 *   move-pages:PID          move_pages of no page (the access checks only)
 *   prlimit:PID             read PID's RLIMIT_CORE with prlimit
 *   prlimit-set:PID         set PID's RLIMIT_CORE to 0 with prlimit
 *
 * IPC and keys
 *   shmget   semget   msgget   SysV objects (IPC_PRIVATE), created and removed
 *   mq-open:NAME            create (and unlink) the POSIX message queue /NAME
 *   mq-create:NAME   mq-openro:NAME   mq-unlink:NAME   create (O_EXCL) and close; open an
 *                           existing one read-only and close; remove
 *   add-key:DESC            add a "user" key DESC to the process keyring
 *   read-key:DESC           search the process keyring for the "user" key DESC and read it
 *   ipc-new:KIND:KEY        create a SysV object (KIND shm, sem or msg; KEY 0: IPC_PRIVATE)
 *                           and keep it for the operations below (one of each kind)
 *   ipc-get:KIND:KEY        look up the existing object KEY (no IPC_CREAT) and keep it
 *   ipc-stat:KIND   ipc-rm:KIND     IPC_STAT, IPC_RMID of the kept object
 *   shmat:r|rw              attach the kept segment read-only or read-write, and detach
 *   semop:zero|add          wait-for-zero (IPC_NOWAIT) or increment the kept semaphore
 *   msgsnd   msgrcv         send one message, receive one (IPC_NOWAIT) on the kept queue
 *
 * Terminals (standard input)
 *   tty:tcgets  tty:winsz  tty:setwinsz  tty:fionread  tty:isatty (ENOTTY when not one)
 *   tty:sti                 push `x` into the input queue (TIOCSTI) of standard input, which
 *                           must already be the controlling terminal
 *
 * Sockets (loopback only), kept in slots named by one letter
 *   socket:FAMILY:TYPE      create and close; FAMILY unix, inet or inet6; TYPE stream or dgram
 *   sock:S:FAMILY:TYPE      create and keep as slot S
 *   bind:S:ADDR             ADDR: a port for inet/inet6 (0 = any free one), a path for unix
 *                           (+NAME: the abstract name NAME)
 *   listen:S   accept:S:NEW   shutdown:S   close:S
 *   connect:S:ADDR          ADDR as for bind, or @T for the address slot T is bound to
 *   send:S   recv:S         send one byte / receive up to 64 bytes
 *
 * Known gaps (docs/language.md, "Limits and known gaps": what no rule governs today)
 *   access:PATH             access(PATH, R_OK): whether the file exists and may be read
 *   statfs:PATH             statfs: the file system's statistics
 *   unshare-user            unshare(CLONE_NEWUSER): a new user namespace
 *
 * Capabilities
 *   cap:sys_admin           unshare a UTS namespace and set its hostname
 *   cap:net_raw             create a raw ICMP socket
 *   cap:net_bind_service    bind an inet socket to 127.0.0.1 port 80
 *   cap:chown:PATH          chown PATH to uid 1
 *
 * Build: gcc -O1 -pthread -o probe probe.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <termios.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/sendfile.h>
#include <sys/shm.h>
#include <sys/xattr.h>
#include <linux/io_uring.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FIELDS 8
#define SLOTS 26

/* The result of an operation: 0 for success, else an errno value. */
typedef int result_t;

struct op {
	const char *name;
	int nfields; /* fields after the name */
	result_t (*run)(char **f);
};

static int slots[SLOTS];

static void usage_error(const char *what, const char *op)
{
	fprintf(stderr, "probe: %s: %s\n", what, op);
	exit(2);
}

static result_t check(long rc)
{
	return rc < 0 ? errno : 0;
}

static result_t close_checked(int fd)
{
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int open_flags(const char *mode)
{
	static const struct { const char *mode; int flags; } modes[] = {
		{ "r", O_RDONLY },	       { "w", O_WRONLY },
		{ "a", O_WRONLY | O_APPEND }, { "rw", O_RDWR },
		{ "ra", O_RDWR | O_APPEND },  { "wt", O_WRONLY | O_TRUNC },
		{ "rwt", O_RDWR | O_TRUNC },  { "ac", O_WRONLY | O_CREAT | O_APPEND },
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(mode, modes[i].mode))
			return modes[i].flags;
	usage_error("unknown open mode", mode);
	return -1;
}

static int signal_number(const char *text)
{
	char *end;
	long n = strtol(text, &end, 10);

	if (*text && !*end)
		return (int)n;
	if (!strncmp(text, "SIG", 3))
		text += 3;
	for (int sig = 1; sig < NSIG; sig++) {
		const char *name = sigabbrev_np(sig);

		if (name && !strcmp(name, text))
			return sig;
	}
	usage_error("unknown signal", text);
	return -1;
}

/* --- files --- */

static result_t op_open(char **f)
{
	return close_checked(open(f[1], open_flags(f[0]), 0644));
}

static result_t op_openat_dirfd(char **f)
{
	int dir = open(f[0], O_RDONLY | O_DIRECTORY);
	result_t r;

	if (dir < 0)
		return errno;
	r = close_checked(openat(dir, f[1], open_flags(f[2])));
	close(dir);
	return r;
}

static result_t op_create(char **f)
{
	return close_checked(open(f[0], O_WRONLY | O_CREAT | O_EXCL, 0644));
}

static result_t op_fstat(char **f)
{
	struct stat st;
	int fd = open(f[0], O_PATH);
	result_t r;

	if (fd < 0)
		return errno;
	r = syscall(SYS_fstat, fd, &st) < 0 ? errno : 0;
	close(fd);
	return r;
}

static result_t op_reopen_fd(char **f)
{
	char path[64];
	int fd = open(f[0], O_RDONLY);
	result_t r;

	if (fd < 0)
		return errno;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = close_checked(open(path, O_RDONLY));
	close(fd);
	return r;
}

static result_t op_read(char **f)
{
	char buf[4096];
	int fd = open(f[0], O_RDONLY);
	result_t r;

	if (fd < 0)
		return errno;
	r = check(read(fd, buf, sizeof(buf)));
	close(fd);
	return r;
}

/* Open `path` with `flags` and write `text`. */
static result_t write_opened(const char *path, int flags, const char *text)
{
	int fd = open(path, flags);
	result_t r;

	if (fd < 0)
		return errno;
	r = check(write(fd, text, strlen(text)));
	close(fd);
	return r;
}

static result_t op_write(char **f)
{
	return write_opened(f[0], O_WRONLY | O_TRUNC, f[1]);
}

static result_t op_stat(char **f)
{
	struct stat st;

	return check(stat(f[0], &st));
}

static result_t op_chmod(char **f)
{
	return check(chmod(f[0], (mode_t)strtol(f[1], NULL, 8)));
}

static result_t op_chown(char **f)
{
	return check(chown(f[0], (uid_t)atoi(f[1]), (gid_t)atoi(f[2])));
}

static result_t op_utime(char **f)
{
	return check(utimensat(AT_FDCWD, f[0], NULL, 0));
}

static result_t op_truncate(char **f)
{
	return check(truncate(f[0], 0));
}

static result_t op_mkdir(char **f)
{
	return check(mkdir(f[0], 0755));
}

static result_t op_rmdir(char **f)
{
	return check(rmdir(f[0]));
}

static result_t op_unlink(char **f)
{
	return check(unlink(f[0]));
}

static result_t op_link(char **f)
{
	return check(link(f[0], f[1]));
}

static result_t op_symlink(char **f)
{
	return check(symlink(f[0], f[1]));
}

static result_t op_rename(char **f)
{
	return check(rename(f[0], f[1]));
}

static result_t op_ioctl(char **f)
{
	int fd = open(f[0], O_RDONLY), n;
	result_t r;

	if (fd < 0)
		return errno;
	r = check(ioctl(fd, FIONREAD, &n));
	close(fd);
	return r;
}

static result_t op_readdir(char **f)
{
	DIR *dir = opendir(f[0]);

	if (!dir)
		return errno;
	errno = 0;
	while (readdir(dir))
		;
	result_t r = errno;
	closedir(dir);
	return r;
}

/* execv's errno travels back through a close-on-exec pipe: EOF means the exec worked. */
static result_t exec_and_wait(char **argv)
{
	int pipefd[2], err = 0;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return errno;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		execv(argv[0], argv);
		err = errno;
		if (write(pipefd[1], &err, sizeof(err)) < 0)
			_exit(126);
		_exit(127);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &err, sizeof(err)) != sizeof(err))
		err = 0;
	close(pipefd[0]);
	waitpid(pid, NULL, 0);
	return err;
}

static result_t op_exec(char **f)
{
	char *argv[MAX_FIELDS + 2], *save = NULL;
	int n = 0;

	for (char *arg = strtok_r(f[0], ",", &save); arg && n < MAX_FIELDS + 1;
	     arg = strtok_r(NULL, ",", &save))
		argv[n++] = arg;
	argv[n] = NULL;
	return exec_and_wait(argv);
}

static result_t op_mmap_exec(char **f)
{
	int fd = open(f[0], O_RDONLY);
	void *p;

	if (fd < 0)
		return errno;
	p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	result_t r = p == MAP_FAILED ? errno : 0;
	if (p != MAP_FAILED)
		munmap(p, 4096);
	close(fd);
	return r;
}

/* --- processes --- */

static result_t op_kill(char **f)
{
	return check(kill((pid_t)atoi(f[0]), signal_number(f[1])));
}

static void ignore_signal(int sig)
{
	(void)sig;
}

static result_t op_kill_self(char **f)
{
	int sig = signal_number(f[0]);

	if (sig > 0)
		signal(sig, ignore_signal);
	return check(kill(getpid(), sig));
}

static result_t op_ptrace_attach(char **f)
{
	pid_t pid = (pid_t)atoi(f[0]);

	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0)
		return errno;
	waitpid(pid, NULL, __WALL);
	ptrace(PTRACE_DETACH, pid, NULL, NULL);
	return 0;
}

static result_t op_ptrace_read(char **f)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%s/environ", f[0]);
	char *fields[] = { path };
	return op_read(fields);
}

static result_t op_proc_mem(char **f)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%s/mem", f[0]);
	return close_checked(open(path, O_RDONLY));
}

static result_t op_proc_mem_write(char **f)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%s/mem", f[0]);
	return close_checked(open(path, O_WRONLY));
}

static result_t op_vm_write(char **f)
{
	struct iovec local = { "X", 1 }, remote = { NULL, 1 };

	return check(process_vm_writev((pid_t)atoi(f[0]), &local, 1, &remote, 1, 0));
}

static result_t op_sleep(char **f)
{
	long ms = atol(f[0]);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	return check(nanosleep(&ts, NULL));
}

/* --- sockets --- */

static int slot_index(const char *name)
{
	if (strlen(name) != 1 || name[0] < 'a' || name[0] > 'z')
		usage_error("socket slots are single letters a-z", name);
	return name[0] - 'a';
}

static int family_number(const char *name)
{
	if (!strcmp(name, "unix"))
		return AF_UNIX;
	if (!strcmp(name, "inet"))
		return AF_INET;
	if (!strcmp(name, "inet6"))
		return AF_INET6;
	usage_error("unknown family", name);
	return -1;
}

static int type_number(const char *name)
{
	if (!strcmp(name, "stream"))
		return SOCK_STREAM;
	if (!strcmp(name, "dgram"))
		return SOCK_DGRAM;
	usage_error("unknown socket type", name);
	return -1;
}

static result_t op_socket(char **f)
{
	return close_checked(socket(family_number(f[0]), type_number(f[1]), 0));
}

static result_t op_sock(char **f)
{
	int fd = socket(family_number(f[1]), type_number(f[2]), 0);

	if (fd < 0)
		return errno;
	slots[slot_index(f[0])] = fd;
	return 0;
}

static int slot_family(int fd)
{
	int family = AF_UNSPEC;
	socklen_t len = sizeof(family);

	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len);
	return family;
}

/* Loopback address `text` (port or path, or @T for slot T's own address) for `fd`. */
static socklen_t make_address(int fd, const char *text, struct sockaddr_storage *addr)
{
	socklen_t len = sizeof(*addr);

	memset(addr, 0, sizeof(*addr));
	if (text[0] == '@') {
		getsockname(slots[slot_index(text + 1)], (struct sockaddr *)addr, &len);
		return len;
	}
	switch (slot_family(fd)) {
	case AF_UNIX: {
		struct sockaddr_un *un = (struct sockaddr_un *)addr;

		un->sun_family = AF_UNIX;
		if (text[0] == '+') {
			/* Abstract: a NUL, then the name; the length bounds the name. */
			snprintf(un->sun_path + 1, sizeof(un->sun_path) - 1, "%s", text + 1);
			return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(text + 1);
		}
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", text);
		return sizeof(*un);
	}
	case AF_INET: {
		struct sockaddr_in *in = (struct sockaddr_in *)addr;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)atoi(text));
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*in);
	}
	default: {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)atoi(text));
		in6->sin6_addr = in6addr_loopback;
		return sizeof(*in6);
	}
	}
}

static result_t op_bind(char **f)
{
	int fd = slots[slot_index(f[0])];
	struct sockaddr_storage addr;
	socklen_t len = make_address(fd, f[1], &addr);

	return check(bind(fd, (struct sockaddr *)&addr, len));
}

static result_t op_connect(char **f)
{
	int fd = slots[slot_index(f[0])];
	struct sockaddr_storage addr;
	socklen_t len = make_address(fd, f[1], &addr);

	return check(connect(fd, (struct sockaddr *)&addr, len));
}

static result_t op_listen(char **f)
{
	return check(listen(slots[slot_index(f[0])], 8));
}

static result_t op_accept(char **f)
{
	int fd = accept(slots[slot_index(f[0])], NULL, NULL);

	if (fd < 0)
		return errno;
	slots[slot_index(f[1])] = fd;
	return 0;
}

static result_t op_send(char **f)
{
	return check(send(slots[slot_index(f[0])], "x", 1, 0));
}

static result_t op_recv(char **f)
{
	char buf[64];

	return check(recv(slots[slot_index(f[0])], buf, sizeof(buf), 0));
}

static result_t op_shutdown(char **f)
{
	return check(shutdown(slots[slot_index(f[0])], SHUT_RDWR));
}

static result_t op_close(char **f)
{
	return check(close(slots[slot_index(f[0])]));
}

/* --- capabilities --- */

static result_t op_cap(char **f)
{
	if (!strcmp(f[0], "sys_admin")) {
		if (unshare(CLONE_NEWUTS) < 0)
			return errno;
		return check(sethostname("probe", 5));
	}
	if (!strcmp(f[0], "net_raw"))
		return close_checked(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
	if (!strcmp(f[0], "net_bind_service")) {
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(80) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		result_t r;

		if (fd < 0)
			return errno;
		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r = check(bind(fd, (struct sockaddr *)&in, sizeof(in)));
		close(fd);
		return r;
	}
	if (!strncmp(f[0], "chown/", 6))
		return check(chown(f[0] + 6, 1, (gid_t)-1));
	usage_error("unknown capability operation", f[0]);
	return EINVAL;
}


/* ---- Ways to write past an append-only grant. ---- */

static result_t op_unappend(char **f)
{
	int fd = open(f[0], O_WRONLY | O_APPEND);
	result_t r;

	if (fd < 0)
		return errno;
	r = check(fcntl(fd, F_SETFL, 0));
	if (!r)
		r = check(pwrite(fd, "X", 1, 0));
	close(fd);
	return r;
}

static result_t op_punch(char **f)
{
	int fd = open(f[0], O_WRONLY | O_APPEND);
	result_t r;

	if (fd < 0)
		return errno;
	r = check(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1));
	close(fd);
	return r;
}

static result_t op_mmap_shared(char **f)
{
	int fd = open(f[0], O_RDWR | O_APPEND);
	char *page;

	if (fd < 0)
		return errno;
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (page == MAP_FAILED) {
		result_t r = errno;

		close(fd);
		return r;
	}
	page[0] = 'X';
	munmap(page, 4096);
	close(fd);
	return 0;
}

static result_t op_mprotect_shared(char **f)
{
	int fd = open(f[0], O_RDWR | O_APPEND);
	result_t r;
	char *page;

	if (fd < 0)
		return errno;
	page = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (page == MAP_FAILED) {
		r = errno;
		close(fd);
		return r;
	}
	r = check(mprotect(page, 4096, PROT_READ | PROT_WRITE));
	if (!r)
		page[0] = 'X';
	munmap(page, 4096);
	close(fd);
	return r;
}

static result_t op_noappend(char **f)
{
	int fd = open(f[0], O_WRONLY | O_APPEND);
	struct iovec iov = { "X", 1 };
	result_t r;

	if (fd < 0)
		return errno;
	r = check(pwritev2(fd, &iov, 1, 0, RWF_NOAPPEND));
	close(fd);
	return r;
}

static result_t op_append(char **f)
{
	return write_opened(f[0], O_WRONLY | O_APPEND, f[1]);
}

static result_t op_copy_range(char **f)
{
	int in = open(f[0], O_RDONLY), out;
	loff_t offset = 0;
	result_t r;

	if (in < 0)
		return errno;
	out = open(f[1], O_WRONLY | O_APPEND);
	if (out < 0) {
		r = errno;
		close(in);
		return r;
	}
	r = check(copy_file_range(in, NULL, out, &offset, 1, 0));
	close(in);
	close(out);
	return r;
}

/* ---- Extended attributes. ---- */

/* A POSIX ACL (linux/posix_acl_xattr.h layout) of user::rw-, group::r--, other::r--. */
static const unsigned char minimal_acl[] = {
	2, 0, 0, 0,			    /* version */
	0x01, 0, 06, 0, 0xff, 0xff, 0xff, 0xff, /* ACL_USER_OBJ rw- */
	0x04, 0, 04, 0, 0xff, 0xff, 0xff, 0xff, /* ACL_GROUP_OBJ r-- */
	0x20, 0, 04, 0, 0xff, 0xff, 0xff, 0xff, /* ACL_OTHER r-- */
};

static result_t op_setxattr(char **f)
{
	if (!strncmp(f[1], "system.posix_acl_", 17))
		return check(setxattr(f[0], f[1], minimal_acl, sizeof(minimal_acl), 0));
	return check(setxattr(f[0], f[1], "x", 1, 0));
}

static result_t op_getxattr(char **f)
{
	char value[256];

	return check(getxattr(f[0], f[1], value, sizeof(value)));
}

static result_t op_listxattr(char **f)
{
	char names[1024];

	return check(listxattr(f[0], names, sizeof(names)));
}

/* One IORING_OP_GETXATTR through a ring of its own, with the raw system calls (no liburing):
 * its result, a negative errno or the value's length. */
static result_t uring_getxattr(const char *path, const char *name, int as_personality)
{
	struct io_uring_params params = { 0 };
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqe;
	unsigned *sq_tail, *sq_array, *cq_head, *cq_tail;
	char value[256];
	void *sq, *cq;
	int ring, personality = 0;
	result_t result = 0;

	ring = syscall(__NR_io_uring_setup, 1, &params);
	if (ring < 0)
		return errno;
	if (as_personality) {
		/* The personality is the task's credentials when it is registered; the worker
		 * thread shares the task's of when the worker starts (with the ring, or at its first
		 * operation, by kernel).  New credentials (any change makes them: keep-caps on, then
		 * off) before and after the registration make the two differ either way, so the
		 * worker switches to the personality's for the operation. */
		if (prctl(PR_SET_KEEPCAPS, 1) < 0)
			goto failed;
		personality = syscall(__NR_io_uring_register, ring, IORING_REGISTER_PERSONALITY, NULL, 0);
		if (personality < 0 || prctl(PR_SET_KEEPCAPS, 0) < 0)
			goto failed;
	}
	sq = mmap(NULL, params.sq_off.array + params.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	cq = mmap(NULL, params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, params.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		goto failed;
	memset(&sqes[0], 0, sizeof(sqes[0]));
	sqes[0].opcode = IORING_OP_GETXATTR;
	sqes[0].addr = (unsigned long)name;
	sqes[0].addr2 = (unsigned long)value;
	sqes[0].addr3 = (unsigned long)path;
	sqes[0].len = sizeof(value);
	sqes[0].personality = personality;
	sq_tail = sq + params.sq_off.tail;
	sq_array = sq + params.sq_off.array;
	sq_array[*sq_tail & *(unsigned *)(sq + params.sq_off.ring_mask)] = 0;
	__atomic_store_n(sq_tail, *sq_tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		goto failed;
	cq_head = cq + params.cq_off.head;
	cq_tail = cq + params.cq_off.tail;
	if (*cq_head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
		result = EIO; /* io_uring_enter waited for one completion: none is a bug */
	} else {
		cqe = (struct io_uring_cqe *)(cq + params.cq_off.cqes) +
		      (*cq_head & *(unsigned *)(cq + params.cq_off.ring_mask));
		result = cqe->res < 0 ? -cqe->res : 0;
	}
	close(ring);
	return result;
failed:
	result = errno;
	close(ring);
	return result;
}

static result_t op_uring_getxattr(char **f)
{
	return uring_getxattr(f[0], f[1], 0);
}

static result_t op_uring_getxattr_as(char **f)
{
	return uring_getxattr(f[0], f[1], 1);
}

static result_t op_removexattr(char **f)
{
	return check(removexattr(f[0], f[1]));
}

/* ---- Inherited descriptors. ---- */

static result_t op_openat_fd(char **f)
{
	return close_checked(openat(atoi(f[0]), f[1], O_RDONLY));
}

static result_t op_sendfile_fd(char **f)
{
	int in = open(f[1], O_RDONLY);
	result_t r;

	if (in < 0)
		return errno;
	r = check(sendfile(atoi(f[0]), in, NULL, 1));
	close(in);
	return r;
}

static result_t op_write_fd(char **f)
{
	return check(write(atoi(f[0]), "x", 1));
}

static result_t op_read_fd(char **f)
{
	char buffer[64];

	return check(read(atoi(f[0]), buffer, sizeof(buffer)));
}

static result_t op_ftruncate_fd(char **f)
{
	return check(ftruncate(atoi(f[0]), 0));
}

static pid_t pid_or_self(const char *text)
{
	return strcmp(text, "self") ? (pid_t)atoi(text) : getpid();
}

static result_t op_sigio(char **f)
{
	int pipefd[2];
	result_t r;

	if (pipe(pipefd))
		return errno;
	r = check(fcntl(pipefd[0], F_SETOWN, pid_or_self(f[0])));
	if (!r)
		r = check(fcntl(pipefd[0], F_SETSIG, signal_number(f[1])));
	if (!r)
		r = check(fcntl(pipefd[0], F_SETFL, O_ASYNC | O_NONBLOCK));
	if (!r)
		r = check(write(pipefd[1], "x", 1));
	close(pipefd[0]);
	close(pipefd[1]);
	return r;
}

static result_t op_sigio_ex(char **f)
{
	struct f_owner_ex owner = { F_OWNER_PID, pid_or_self(f[0]) };
	int pipefd[2];
	result_t r;

	if (pipe(pipefd))
		return errno;
	r = check(fcntl(pipefd[0], F_SETOWN_EX, &owner));
	close(pipefd[0]);
	close(pipefd[1]);
	return r;
}

static result_t op_tiocsti(char **f)
{
	result_t r;

	if (setsid() < 0 && errno != EPERM)
		return errno;
	r = check(ioctl(0, TIOCSCTTY, 0));
	for (const char *c = f[0]; !r && *c; c++)
		r = check(ioctl(0, TIOCSTI, c));
	return r;
}

static result_t op_bpf_obj_get(char **f)
{
	/* union bpf_attr for BPF_OBJ_GET (linux/bpf.h): pathname, bpf_fd, file_flags. */
	struct { unsigned long long pathname; unsigned int bpf_fd, file_flags; } attr = {
		.pathname = (unsigned long)f[0],
	};

	return close_checked(syscall(SYS_bpf, 7 /* BPF_OBJ_GET */, &attr, sizeof(attr)));
}

/* ---- SysV IPC, POSIX message queues, keys. ---- */

static result_t op_shmget(char **f)
{
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);

	(void)f;
	if (id < 0)
		return errno;
	shmctl(id, IPC_RMID, NULL);
	return 0;
}

static result_t op_semget(char **f)
{
	int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);

	(void)f;
	if (id < 0)
		return errno;
	semctl(id, 0, IPC_RMID);
	return 0;
}

static result_t op_msgget(char **f)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);

	(void)f;
	if (id < 0)
		return errno;
	msgctl(id, IPC_RMID, NULL);
	return 0;
}

/* `mq-create`: create (and close) a queue; `mq-openro`: open one that exists, read-only. */
static result_t mq_open_name(const char *name, int flags)
{
	char path[256];
	mqd_t q;

	snprintf(path, sizeof(path), "/%s", name);
	q = mq_open(path, flags, 0600, NULL);
	if (q == (mqd_t)-1)
		return errno;
	mq_close(q);
	return 0;
}

static result_t op_mq_create(char **f)
{
	return mq_open_name(f[0], O_CREAT | O_EXCL | O_RDWR);
}

static result_t op_mq_openro(char **f)
{
	return mq_open_name(f[0], O_RDONLY);
}

static result_t op_mq_unlink(char **f)
{
	char path[256];

	snprintf(path, sizeof(path), "/%s", f[0]);
	return check(mq_unlink(path));
}

static result_t op_mq_open(char **f)
{
	result_t r = mq_open_name(f[0], O_CREAT | O_RDWR);

	if (!r)
		op_mq_unlink(f);
	return r;
}

static result_t op_add_key(char **f)
{
	/* KEY_SPEC_PROCESS_KEYRING */
	return check(syscall(SYS_add_key, "user", f[0], "x", 1, -2));
}

static result_t op_access(char **f)
{
	return check(access(f[0], R_OK));
}

static result_t op_readlink(char **f)
{
	char target[4096];

	return check(readlink(f[0], target, sizeof(target)));
}

static result_t op_statfs(char **f)
{
	struct statfs st;

	return check(statfs(f[0], &st));
}

static result_t op_inotify(char **f)
{
	int fd = inotify_init1(IN_CLOEXEC);
	result_t result;

	if (fd < 0)
		return errno;
	result = check(inotify_add_watch(fd, f[0], IN_ALL_EVENTS));
	close(fd);
	return result;
}

static result_t op_renice(char **f)
{
	return check(setpriority(PRIO_PROCESS, pid_or_self(f[0]), 19));
}

static result_t op_ioprio(char **f)
{
	/* IOPRIO_WHO_PROCESS; IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 7) */
	return check(syscall(SYS_ioprio_set, 1, pid_or_self(f[0]), 2 << 13 | 7));
}

static result_t op_setaffinity(char **f)
{
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	return check(sched_setaffinity(pid_or_self(f[0]), sizeof(cpus), &cpus));
}

static result_t op_move_pages(char **f)
{
	return check(syscall(SYS_move_pages, pid_or_self(f[0]), 0, NULL, NULL, NULL, 0));
}

static result_t op_prlimit(char **f)
{
	struct rlimit old;

	return check(prlimit(pid_or_self(f[0]), RLIMIT_CORE, NULL, &old));
}

static result_t op_prlimit_set(char **f)
{
	struct rlimit none = { 0, 0 };

	return check(prlimit(pid_or_self(f[0]), RLIMIT_CORE, &none, NULL));
}

static result_t op_unshare_user(char **f)
{
	return check(unshare(CLONE_NEWUSER));
}

static result_t op_mount_tmpfs(char **f)
{
	result_t result = check(mount("probe", f[0], "tmpfs", 0, NULL));

	if (!result)
		umount(f[0]);
	return result;
}

static result_t op_umount(char **f)
{
	return check(umount(f[0]));
}

static result_t op_move_mount(char **f)
{
	int tree = syscall(SYS_open_tree, AT_FDCWD, f[0], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	result_t result;

	if (tree < 0)
		return errno;
	result = check(syscall(SYS_move_mount, tree, "", AT_FDCWD, f[1], MOVE_MOUNT_F_EMPTY_PATH));
	close(tree);
	return result;
}

static result_t op_pivot_root(char **f)
{
	if (unshare(CLONE_NEWNS) < 0)
		return errno;
	return check(syscall(SYS_pivot_root, f[0], f[0]));
}

static result_t lock_read_only(const char *path, int how)
{
	int fd = open(path, O_RDONLY);
	result_t result;

	if (fd < 0)
		return errno;
	result = check(flock(fd, how | LOCK_NB));
	close(fd);
	return result;
}

static result_t op_flock(char **f)
{
	return lock_read_only(f[0], LOCK_EX);
}

static result_t op_flock_shared(char **f)
{
	return lock_read_only(f[0], LOCK_SH);
}

static result_t op_read_key(char **f)
{
	char payload[16];
	/* KEYCTL_SEARCH (10) of the process keyring (-2), then KEYCTL_READ (11) */
	long id = syscall(SYS_keyctl, 10, -2, "user", f[0], 0);

	if (id < 0)
		return errno;
	return check(syscall(SYS_keyctl, 11, id, payload, sizeof(payload)));
}

/* SysV objects kept between operations, one of each kind. */
static int ipc_ids[3] = { -1, -1, -1 };

static int ipc_kind(const char *name)
{
	if (!strcmp(name, "shm"))
		return 0;
	if (!strcmp(name, "sem"))
		return 1;
	if (!strcmp(name, "msg"))
		return 2;
	usage_error("unknown IPC kind", name);
	return -1;
}

static result_t ipc_get(int kind, key_t key, int flags)
{
	int id = kind == 0 ? shmget(key, 4096, flags | 0600)
		 : kind == 1 ? semget(key, 1, flags | 0600)
			     : msgget(key, flags | 0600);

	if (id < 0)
		return errno;
	ipc_ids[kind] = id;
	return 0;
}

static result_t op_ipc_new(char **f)
{
	return ipc_get(ipc_kind(f[0]), (key_t)atoi(f[1]), IPC_CREAT | IPC_EXCL);
}

static result_t op_ipc_get(char **f)
{
	return ipc_get(ipc_kind(f[0]), (key_t)atoi(f[1]), 0);
}

static result_t op_ipc_stat(char **f)
{
	int kind = ipc_kind(f[0]);
	struct shmid_ds shm;
	struct msqid_ds msq;
	struct semid_ds sem;

	if (kind == 0)
		return check(shmctl(ipc_ids[0], IPC_STAT, &shm));
	if (kind == 1)
		return check(semctl(ipc_ids[1], 0, IPC_STAT, &sem));
	return check(msgctl(ipc_ids[2], IPC_STAT, &msq));
}

static result_t op_ipc_rm(char **f)
{
	int kind = ipc_kind(f[0]);

	if (kind == 0)
		return check(shmctl(ipc_ids[0], IPC_RMID, NULL));
	if (kind == 1)
		return check(semctl(ipc_ids[1], 0, IPC_RMID));
	return check(msgctl(ipc_ids[2], IPC_RMID, NULL));
}

static result_t op_shmat(char **f)
{
	void *at = shmat(ipc_ids[0], NULL, strcmp(f[0], "r") ? 0 : SHM_RDONLY);

	if (at == (void *)-1)
		return errno;
	shmdt(at);
	return 0;
}

static result_t op_semop(char **f)
{
	/* `add`: V the semaphore; `zero`: wait for zero (it is zero: returns at once) */
	struct sembuf op = { .sem_num = 0, .sem_op = strcmp(f[0], "add") ? 0 : 1, .sem_flg = IPC_NOWAIT };

	return check(semop(ipc_ids[1], &op, 1));
}

static result_t op_msgsnd(char **f)
{
	struct { long type; char text[8]; } message = { .type = 1, .text = "x" };

	(void)f;
	return check(msgsnd(ipc_ids[2], &message, 1, IPC_NOWAIT));
}

static result_t op_msgrcv(char **f)
{
	struct { long type; char text[8]; } message;

	(void)f;
	return check(msgrcv(ipc_ids[2], &message, sizeof(message.text), 0, IPC_NOWAIT));
}

/* Terminal ioctls on standard input. */
static result_t op_tty(char **f)
{
	struct termios termios;
	struct winsize size;
	int pending;

	if (!strcmp(f[0], "tcgets"))
		return check(ioctl(0, TCGETS, &termios));
	if (!strcmp(f[0], "winsz"))
		return check(ioctl(0, TIOCGWINSZ, &size));
	if (!strcmp(f[0], "setwinsz")) {
		if (ioctl(0, TIOCGWINSZ, &size))
			return errno;
		return check(ioctl(0, TIOCSWINSZ, &size));
	}
	if (!strcmp(f[0], "fionread"))
		return check(ioctl(0, FIONREAD, &pending));
	if (!strcmp(f[0], "isatty"))
		return isatty(0) ? 0 : errno;
	if (!strcmp(f[0], "sti"))
		return check(ioctl(0, TIOCSTI, "x"));
	usage_error("unknown tty operation", f[0]);
	return 0;
}

static const struct op ops[] = {
	{ "open", 2, op_open },
	{ "openat-dirfd", 3, op_openat_dirfd },
	{ "create", 1, op_create },
	{ "reopen-fd", 1, op_reopen_fd },
	{ "fstat", 1, op_fstat },
	{ "read", 1, op_read },
	{ "write", 2, op_write },
	{ "stat", 1, op_stat },
	{ "chmod", 2, op_chmod },
	{ "chown", 3, op_chown },
	{ "utime", 1, op_utime },
	{ "truncate", 1, op_truncate },
	{ "mkdir", 1, op_mkdir },
	{ "rmdir", 1, op_rmdir },
	{ "unlink", 1, op_unlink },
	{ "link", 2, op_link },
	{ "symlink", 2, op_symlink },
	{ "rename", 2, op_rename },
	{ "ioctl", 1, op_ioctl },
	{ "readdir", 1, op_readdir },
	{ "exec", 1, op_exec },
	{ "mmap-exec", 1, op_mmap_exec },
	{ "unappend", 1, op_unappend },
	{ "punch", 1, op_punch },
	{ "mmap-shared", 1, op_mmap_shared },
	{ "mprotect-shared", 1, op_mprotect_shared },
	{ "noappend", 1, op_noappend },
	{ "append", 2, op_append },
	{ "copy-range", 2, op_copy_range },
	{ "setxattr", 2, op_setxattr },
	{ "getxattr", 2, op_getxattr },
	{ "listxattr", 1, op_listxattr },
	{ "uring-getxattr", 2, op_uring_getxattr },
	{ "uring-getxattr-as", 2, op_uring_getxattr_as },
	{ "removexattr", 2, op_removexattr },
	{ "openat-fd", 2, op_openat_fd },
	{ "sendfile-fd", 2, op_sendfile_fd },
	{ "write-fd", 1, op_write_fd },
	{ "read-fd", 1, op_read_fd },
	{ "ftruncate-fd", 1, op_ftruncate_fd },
	{ "kill", 2, op_kill },
	{ "kill-self", 1, op_kill_self },
	{ "ptrace-attach", 1, op_ptrace_attach },
	{ "ptrace-read", 1, op_ptrace_read },
	{ "proc-mem", 1, op_proc_mem },
	{ "proc-mem-write", 1, op_proc_mem_write },
	{ "vm-write", 1, op_vm_write },
	{ "sleep", 1, op_sleep },
	{ "sigio", 2, op_sigio },
	{ "sigio-ex", 1, op_sigio_ex },
	{ "tiocsti", 1, op_tiocsti },
	{ "renice", 1, op_renice },
	{ "ioprio", 1, op_ioprio },
	{ "setaffinity", 1, op_setaffinity },
	{ "move-pages", 1, op_move_pages },
	{ "prlimit", 1, op_prlimit },
	{ "prlimit-set", 1, op_prlimit_set },
	{ "mount-tmpfs", 1, op_mount_tmpfs },
	{ "umount", 1, op_umount },
	{ "move-mount", 2, op_move_mount },
	{ "pivot-root", 1, op_pivot_root },
	{ "bpf-obj-get", 1, op_bpf_obj_get },
	{ "shmget", 0, op_shmget },
	{ "semget", 0, op_semget },
	{ "msgget", 0, op_msgget },
	{ "mq-open", 1, op_mq_open },
	{ "add-key", 1, op_add_key },
	{ "read-key", 1, op_read_key },
	{ "mq-create", 1, op_mq_create },
	{ "mq-openro", 1, op_mq_openro },
	{ "mq-unlink", 1, op_mq_unlink },
	{ "ipc-new", 2, op_ipc_new },
	{ "ipc-get", 2, op_ipc_get },
	{ "ipc-stat", 1, op_ipc_stat },
	{ "ipc-rm", 1, op_ipc_rm },
	{ "shmat", 1, op_shmat },
	{ "semop", 1, op_semop },
	{ "msgsnd", 0, op_msgsnd },
	{ "msgrcv", 0, op_msgrcv },
	{ "tty", 1, op_tty },
	{ "socket", 2, op_socket },
	{ "sock", 3, op_sock },
	{ "bind", 2, op_bind },
	{ "connect", 2, op_connect },
	{ "listen", 1, op_listen },
	{ "accept", 2, op_accept },
	{ "send", 1, op_send },
	{ "recv", 1, op_recv },
	{ "shutdown", 1, op_shutdown },
	{ "close", 1, op_close },
	{ "cap", 1, op_cap },
	{ "access", 1, op_access },
	{ "readlink", 1, op_readlink },
	{ "statfs", 1, op_statfs },
	{ "inotify", 1, op_inotify },
	{ "unshare-user", 0, op_unshare_user },
	{ "flock", 1, op_flock },
	{ "flock-shared", 1, op_flock_shared },
};

static void print_result(result_t r)
{
	const char *name = r ? strerrorname_np(r) : "ok";

	if (name)
		printf("%s\n", name);
	else
		printf("E%d\n", r);
}

/* Split `text` at ':' into the operation's name and fields; `cap:chown:PATH` keeps its
 * path attached to the capability name as `chown/PATH`. */
static const struct op *parse(char *text, char **fields)
{
	char *save = NULL, *name = strtok_r(text, ":", &save);
	int n = 0;

	for (size_t i = 0; name && i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(name, ops[i].name))
			continue;
		for (char *f = strtok_r(NULL, ":", &save); f; f = strtok_r(NULL, ":", &save)) {
			if (n == MAX_FIELDS)
				usage_error("too many fields", name);
			fields[n++] = f;
		}
		if (ops[i].run == op_cap && n == 2 && !strcmp(fields[0], "chown")) {
			fields[1][-1] = '/';
			n = 1;
		}
		if (n != ops[i].nfields)
			usage_error("wrong number of fields", name);
		return &ops[i];
	}
	usage_error("unknown operation", name ? name : "(empty)");
	return NULL;
}

static void run_all(int count, char **args);

struct thread_args {
	int count;
	char **args;
};

static void *thread_main(void *arg)
{
	struct thread_args *t = arg;

	run_all(t->count, t->args);
	return NULL;
}

static void run_in_thread(int count, char **args)
{
	struct thread_args t = { count, args };
	pthread_t thread;
	int err = pthread_create(&thread, NULL, thread_main, &t);

	if (err) {
		print_result(err);
		return;
	}
	pthread_join(thread, NULL);
	print_result(0);
}

static void run_in_child(int count, char **args)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		print_result(errno);
		return;
	}
	if (pid == 0) {
		run_all(count, args);
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		print_result(0);
	else if (WIFEXITED(status))
		printf("exit %d\n", WEXITSTATUS(status));
	else
		printf("signal %d\n", WTERMSIG(status));
}

#define EXEC_WITH "exec-with:"

/* `exec-with:PATH OP...`: PATH runs the remaining operations. */
static void run_exec_with(char *path, int count, char **args)
{
	char **argv = calloc(count + 2, sizeof(*argv));

	argv[0] = path;
	for (int i = 0; i < count; i++)
		argv[i + 1] = args[i];
	print_result(exec_and_wait(argv));
	free(argv);
}

/* parse() cuts up its argument: each round runs on fresh copies. */
static void run_forever(int count, char **args)
{
	char **copies = count ? calloc(count, sizeof(*copies)) : NULL;

	if (!copies)
		return; /* nothing to repeat (or no memory) */
	for (;;) {
		for (int i = 0; i < count; i++)
			copies[i] = strdup(args[i]);
		run_all(count, copies);
		for (int i = 0; i < count; i++)
			free(copies[i]);
	}
}

static void run_all(int count, char **args)
{
	for (int i = 0; i < count; i++) {
		char *fields[MAX_FIELDS];

		if (!strcmp(args[i], "forever")) {
			run_forever(count - i - 1, args + i + 1);
			return;
		}

		if (!strcmp(args[i], "fork")) {
			run_in_child(count - i - 1, args + i + 1);
			return;
		}
		if (!strcmp(args[i], "thread")) {
			run_in_thread(count - i - 1, args + i + 1);
			return;
		}
		if (!strncmp(args[i], EXEC_WITH, strlen(EXEC_WITH))) {
			run_exec_with(args[i] + strlen(EXEC_WITH), count - i - 1, args + i + 1);
			return;
		}
		const struct op *op = parse(args[i], fields);
		print_result(op->run(fields));
	}
}

/* Reject a malformed operation before anything runs (parse() cuts up its argument). */
static void validate(int count, char **args)
{
	for (int i = 0; i < count; i++) {
		char *fields[MAX_FIELDS], *copy;

		if (!strcmp(args[i], "fork") || !strcmp(args[i], "thread") ||
		    !strcmp(args[i], "forever") || !strncmp(args[i], EXEC_WITH, strlen(EXEC_WITH)))
			continue;
		copy = strdup(args[i]);
		parse(copy, fields);
		free(copy);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: probe OP [OP...] (operations are listed in probe.c)\n");
		return 2;
	}
	validate(argc - 1, argv + 1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	run_all(argc - 1, argv + 1);
	return 0;
}
