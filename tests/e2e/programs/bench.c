// SPDX-License-Identifier: GPL-2.0
/*
 * bench: the workloads of `make bench` (tests/e2e/bench.py), each timed here, in the process
 * the benchmark confines, so that Python's own start and file accesses stay outside the figure.
 *
 *   bench open PATH N          N times open(PATH, O_RDONLY), read() of it, close()
 *   bench stat PATH N          N times stat(PATH)
 *   bench exec N PROGRAM ARG.. N times fork, execv(PROGRAM, ARGS) and wait; the child's output
 *                              goes to /dev/null; a child that fails ends the benchmark
 *   bench call N               N calls of probed(), a function a #[func] context can name
 *
 * Prints the mean ns per iteration.  Exit status: 0; 1 if an operation failed; 2 for usage.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

__attribute__((noinline)) int probed(int x)
{
	asm volatile("" ::: "memory");
	return x + 1;
}

static int open_read_close(const char *path)
{
	char buffer[4096];
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		perror("open");
		return -1;
	}
	if (read(fd, buffer, sizeof(buffer)) < 0) {
		perror("read");
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int fork_exec_wait(char **argv)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: %s failed (status %#x)\n", argv[0], status);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	long n;
	double start;
	int sink = 0;
	struct stat st;

	if (!strcmp(mode, "open") && argc == 4) {
		n = atol(argv[3]);
		start = now_ns();
		for (long i = 0; i < n; i++)
			if (open_read_close(argv[2]))
				return 1;
	} else if (!strcmp(mode, "stat") && argc == 4) {
		n = atol(argv[3]);
		start = now_ns();
		for (long i = 0; i < n; i++)
			if (stat(argv[2], &st)) {
				perror("stat");
				return 1;
			}
	} else if (!strcmp(mode, "exec") && argc >= 4) {
		n = atol(argv[2]);
		start = now_ns();
		for (long i = 0; i < n; i++)
			if (fork_exec_wait(argv + 3))
				return 1;
	} else if (!strcmp(mode, "call") && argc == 3) {
		n = atol(argv[2]);
		start = now_ns();
		for (long i = 0; i < n; i++)
			sink = probed(sink);
	} else {
		fprintf(stderr, "usage: bench open PATH N | stat PATH N | exec N PROGRAM [ARG...]"
				" | call N\n");
		return 2;
	}
	if (n <= 0) {
		fprintf(stderr, "bench: N must be positive\n");
		return 2;
	}
	printf("%.1f\n", (now_ns() - start) / n);
	return sink == -1;
}
