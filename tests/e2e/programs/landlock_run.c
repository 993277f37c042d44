// SPDX-License-Identifier: GPL-2.0
/*
 * landlock-run: run COMMAND under a Landlock ruleset, `make bench`'s Landlock comparison.
 *
 *   landlock-run [-r PATH | -w PATH | -x PATH]... -- COMMAND [ARG...]
 *
 * The ruleset handles every file system right the running kernel's Landlock ABI knows, so
 * everything not granted here is denied: -r grants reading PATH (a file, or everything beneath
 * a directory), -w reading and writing it, -x reading and executing it.  The process then
 * restricts itself (with no_new_privs, which Landlock requires of an unprivileged process and
 * which keeps the test honest for root too) and executes COMMAND.
 *
 * Exit status: COMMAND's; 2 for usage; 3 if Landlock is unavailable or refused a step.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define READ_RIGHTS (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define WRITE_RIGHTS (READ_RIGHTS | LANDLOCK_ACCESS_FS_WRITE_FILE)
#define EXEC_RIGHTS (READ_RIGHTS | LANDLOCK_ACCESS_FS_EXECUTE)
/* The rights Landlock accepts on a rule for a file (the others concern directories). */
#define FILE_RIGHTS                                                                            \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE)
/* ABI 1's rights (Linux 5.13); ABI 2 (5.19) adds REFER. */
#define ABI1_RIGHTS ((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1)

static int fail(const char *what)
{
	fprintf(stderr, "landlock-run: %s: %s\n", what, strerror(errno));
	return 3;
}

static int add_rule(int ruleset, const char *path, __u64 rights)
{
	struct landlock_path_beneath_attr rule = { .allowed_access = rights };
	struct stat st;
	int rc;

	rule.parent_fd = open(path, O_PATH | O_CLOEXEC);
	if (rule.parent_fd < 0 || fstat(rule.parent_fd, &st))
		return fail(path);
	if (!S_ISDIR(st.st_mode))
		rule.allowed_access &= FILE_RIGHTS;
	rc = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
	close(rule.parent_fd);
	return rc ? fail(path) : 0;
}

int main(int argc, char **argv)
{
	struct landlock_ruleset_attr attr = { .handled_access_fs = ABI1_RIGHTS };
	int abi, ruleset, i;

	abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1)
		return fail("Landlock is not available");
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	ruleset = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (ruleset < 0)
		return fail("landlock_create_ruleset");
	for (i = 1; i + 1 < argc && strcmp(argv[i], "--"); i += 2) {
		const char *option = argv[i];
		__u64 rights = !strcmp(option, "-r") ? READ_RIGHTS :
			       !strcmp(option, "-w") ? WRITE_RIGHTS :
			       !strcmp(option, "-x") ? EXEC_RIGHTS : 0;

		if (!rights) {
			fprintf(stderr, "landlock-run: unknown option %s\n", option);
			return 2;
		}
		if (add_rule(ruleset, argv[i + 1], rights))
			return 3;
	}
	if (i + 1 >= argc || strcmp(argv[i], "--")) {
		fprintf(stderr, "usage: landlock-run [-r|-w|-x PATH]... -- COMMAND [ARG...]\n");
		return 2;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return fail("prctl(PR_SET_NO_NEW_PRIVS)");
	if (syscall(SYS_landlock_restrict_self, ruleset, 0))
		return fail("landlock_restrict_self");
	close(ruleset);
	execv(argv[i + 1], argv + i + 1);
	return fail(argv[i + 1]);
}
