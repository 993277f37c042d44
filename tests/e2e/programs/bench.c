// SPDX-License-Identifier: GPL-2.0
/*
 * bench: micro-benchmarks for `make bench`.
 *
 *   bench open PATH N     N times open(PATH, O_RDONLY) + close; prints ns per iteration
 *   bench call N          N calls of probed(), a function a #[func] context can name
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	long n;
	double start;
	int sink = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: bench open PATH N | bench call N\n");
		return 2;
	}
	if (!strcmp(argv[1], "open") && argc == 4) {
		n = atol(argv[3]);
		start = now_ns();
		for (long i = 0; i < n; i++) {
			int fd = open(argv[2], O_RDONLY);

			if (fd < 0) {
				perror("open");
				return 1;
			}
			close(fd);
		}
	} else if (!strcmp(argv[1], "call")) {
		n = atol(argv[2]);
		start = now_ns();
		for (long i = 0; i < n; i++)
			sink = probed(sink);
	} else {
		fprintf(stderr, "bench: unknown mode %s\n", argv[1]);
		return 2;
	}
	printf("%.1f\n", (now_ns() - start) / n);
	return sink == -1;
}
