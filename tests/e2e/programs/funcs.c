// SPDX-License-Identifier: GPL-2.0
/*
 * funcs: the program the function-context (#[func]) kernel tests confine.
 *
 *   funcs MODE PATH
 *
 * Each mode opens PATH for reading from a particular place in the call graph and prints
 * one line per attempt, "<where> PATH: <ok|ERRNO>":
 *
 *   outside      from main(), outside every probed function
 *   inside       inside gate()
 *   after        inside gate(), then again after gate() returned
 *   recurse      inside descend(3): at the deepest level, then on the way back up at
 *                every level, so that the outermost return is what ends the context
 *   deep         inside descend(100), deeper than the kernel's 64 nested return probes:
 *                at the deepest level, then after the outermost call returned
 *   threads      thread A inside gate() holds it open while thread B, outside, tries too
 *   static       inside hidden(), a `static` function
 *   fork         inside gate(): fork, and the child tries (it is inside the same call)
 *   thread-in    inside gate(): start a thread, which tries (a new thread is outside)
 *   library      inside lib_gate() of libe2e.so
 *   exec         inside gate(): exec `funcs outside PATH` (a new image is outside)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int lib_gate(const char *where, const char *path); /* libe2e.so */

static const char *errno_name(int error)
{
	switch (error) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOENT: return "ENOENT";
	}
	return "EOTHER";
}

__attribute__((noinline)) int try_open(const char *where, const char *path)
{
	int fd = open(path, O_RDONLY);
	int error = fd < 0 ? errno : 0;

	if (fd >= 0)
		close(fd);
	printf("%s %s: %s\n", where, path, errno_name(error));
	fflush(stdout);
	return error;
}

typedef void (*action_t)(const char *path);

__attribute__((noinline)) int gate(action_t action, const char *path)
{
	action(path);
	asm volatile("" ::: "memory"); /* keep the call a call, not a tail jump */
	return 0;
}

__attribute__((noinline)) static int hidden(const char *path)
{
	int result = try_open("static", path);

	asm volatile("" ::: "memory");
	return result;
}

__attribute__((noinline)) int descend(int depth, const char *path)
{
	char where[32];

	if (depth == 0) {
		try_open("deepest", path);
	} else {
		descend(depth - 1, path);
		snprintf(where, sizeof(where), "unwinding-%d", depth);
		try_open(where, path);
	}
	asm volatile("" ::: "memory");
	return 0;
}

/* descend() without the messages on the way up: only the deepest level tries. */
__attribute__((noinline)) int descend_quietly(int depth, const char *path)
{
	if (depth == 0)
		try_open("deepest", path);
	else
		descend_quietly(depth - 1, path);
	asm volatile("" ::: "memory");
	return 0;
}

static void open_inside(const char *path) { try_open("inside", path); }

static void fork_inside(const char *path)
{
	pid_t child = fork();

	if (child == 0) {
		try_open("child", path);
		exit(0);
	}
	waitpid(child, NULL, 0);
}

static void *thread_try(void *path)
{
	try_open("new-thread", path);
	return NULL;
}

static void thread_inside(const char *path)
{
	pthread_t thread;

	pthread_create(&thread, NULL, thread_try, (void *)path);
	pthread_join(thread, NULL);
}

static char self_path[4096];

static void exec_inside(const char *path)
{
	pid_t child = fork();

	if (child == 0) {
		execl(self_path, self_path, "outside", path, (char *)NULL);
		_exit(127);
	}
	waitpid(child, NULL, 0);
}

/* Two threads at once: A enters gate() and waits there until B has tried from outside. */
static sem_t a_inside, b_done;
static const char *shared_path;

static void wait_inside(const char *path)
{
	try_open("thread-a-inside", path);
	sem_post(&a_inside);
	sem_wait(&b_done);
	try_open("thread-a-still-inside", path);
}

static void *thread_a(void *unused)
{
	gate(wait_inside, shared_path);
	return NULL;
}

static void *thread_b(void *unused)
{
	sem_wait(&a_inside);
	try_open("thread-b-outside", shared_path);
	sem_post(&b_done);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode, *path;

	if (argc != 3) {
		fprintf(stderr, "usage: funcs MODE PATH\n");
		return 2;
	}
	mode = argv[1];
	path = argv[2];
	if (readlink("/proc/self/exe", self_path, sizeof(self_path) - 1) < 0)
		strcpy(self_path, argv[0]);
	if (!strcmp(mode, "outside")) {
		try_open("outside", path);
	} else if (!strcmp(mode, "inside")) {
		gate(open_inside, path);
	} else if (!strcmp(mode, "after")) {
		gate(open_inside, path);
		try_open("after", path);
	} else if (!strcmp(mode, "recurse")) {
		descend(3, path);
		try_open("returned", path);
	} else if (!strcmp(mode, "deep")) {
		descend_quietly(100, path);
		try_open("returned", path);
	} else if (!strcmp(mode, "threads")) {
		pthread_t a, b;

		shared_path = path;
		sem_init(&a_inside, 0, 0);
		sem_init(&b_done, 0, 0);
		pthread_create(&a, NULL, thread_a, NULL);
		pthread_create(&b, NULL, thread_b, NULL);
		pthread_join(a, NULL);
		pthread_join(b, NULL);
	} else if (!strcmp(mode, "static")) {
		hidden(path);
	} else if (!strcmp(mode, "fork")) {
		gate(fork_inside, path);
	} else if (!strcmp(mode, "thread-in")) {
		gate(thread_inside, path);
	} else if (!strcmp(mode, "library")) {
		lib_gate("library", path);
	} else if (!strcmp(mode, "exec")) {
		gate(exec_inside, path);
	} else {
		fprintf(stderr, "funcs: unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
