// SPDX-License-Identifier: GPL-2.0
/* libe2e.so: a shared library whose function a `#[func "lib_gate" in "..."]` rule names. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) int lib_gate(const char *where, const char *path)
{
	int fd = open(path, O_RDONLY);
	int error = fd < 0 ? errno : 0;

	if (fd >= 0)
		close(fd);
	printf("%s %s: %s\n", where, path, error == 0 ? "ok" : error == EPERM ? "EPERM" : "EOTHER");
	fflush(stdout);
	return error;
}
