/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Network hooks (net rules): the socket's address family and the operation; and the fs rule
 * on a unix socket's file.
 */
#ifndef BPFBOX_HOOKS_NET_BPF_H
#define BPFBOX_HOOKS_NET_BPF_H

#include "checks.bpf.h"

static __always_inline int check_socket(struct socket *sock, __u64 req)
{
	struct task_state *t = confined_current();

	return t ? check_net(t, BPF_CORE_READ(sock, sk, __sk_common.skc_family), req) : 0;
}

SEC("lsm/socket_create")
int BPF_PROG(bpfbox_socket_create, int family, int type, int protocol, int kern)
{
	struct task_state *t;

	if (kern)
		return 0;
	t = confined_current();
	return t ? check_net(t, family, NET_CREATE) : 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(bpfbox_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen)
{
	return check_socket(sock, NET_CONNECT);
}

SEC("lsm/socket_bind")
int BPF_PROG(bpfbox_socket_bind, struct socket *sock, struct sockaddr *address, int addrlen)
{
	return check_socket(sock, NET_BIND);
}

SEC("lsm/socket_listen")
int BPF_PROG(bpfbox_socket_listen, struct socket *sock, int backlog)
{
	return check_socket(sock, NET_LISTEN);
}

SEC("lsm/socket_accept")
int BPF_PROG(bpfbox_socket_accept, struct socket *sock, struct socket *newsock)
{
	return check_socket(sock, NET_ACCEPT);
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(bpfbox_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size)
{
	return check_socket(sock, NET_SEND);
}

SEC("lsm/socket_recvmsg")
int BPF_PROG(bpfbox_socket_recvmsg, struct socket *sock, struct msghdr *msg, int size, int flags)
{
	return check_socket(sock, NET_RECV);
}

SEC("lsm/socket_shutdown")
int BPF_PROG(bpfbox_socket_shutdown, struct socket *sock, int how)
{
	return check_socket(sock, NET_SHUTDOWN);
}

/* Connecting or sending to a pathname unix socket is writing to its socket file: `fs(PATH,
 * write)`, besides the net rule (abstract and unnamed sockets have no path: net only). */
static __always_inline int check_unix_peer(struct sock *peer)
{
	struct task_state *t = confined_current();
	struct unix_sock *u = (void *)peer;
	struct dentry *dentry;

	if (!t || !peer)
		return 0;
	dentry = BPF_CORE_READ(u, path.dentry);
	return dentry ? check_fs(t, BPF_CORE_READ(u, path.mnt), dentry, FS_WRITE, 0) : 0;
}

SEC("lsm/unix_stream_connect")
int BPF_PROG(bpfbox_unix_stream_connect, struct sock *sock, struct sock *other, struct sock *newsk)
{
	return check_unix_peer(other);
}

SEC("lsm/unix_may_send")
int BPF_PROG(bpfbox_unix_may_send, struct socket *sock, struct socket *other)
{
	return check_unix_peer(BPF_CORE_READ(other, sk));
}

#endif /* BPFBOX_HOOKS_NET_BPF_H */
