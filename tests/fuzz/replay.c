/* SPDX-License-Identifier: MIT */
/*
 * replay.c - the main() a fuzz target is linked with when it is not built
 * for libFuzzer: it runs LLVMFuzzerTestOneInput() once over every file of
 * the directories (or the files) it is given, in name order so a run is
 * reproducible, after LLVMFuzzerInitialize() if the target defines one.
 * ctest runs it over tests/fuzz/corpus/<target> and
 * tests/fuzz/regressions/<target>, so every build replays what fuzzing has
 * found; a crash aborts the run with the file's name on stderr.
 *
 * Usage: <target> PATH...   (a missing or empty directory is an error, so
 * a corpus that went missing does not pass silently)
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Weak: a target without set-up does not define it. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Read all of @path into a malloc'ed buffer (at least one byte allocated,
 * so an empty file still has an address). Return: 0 or -errno. */
static int slurp(const char *path, uint8_t **bufp, size_t *lenp)
{
	struct stat sb;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		rc = -errno;
		goto out;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);

		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			free(buf);
			goto out;
		}
		got += (size_t)n;
	}
	*bufp = buf;
	*lenp = got;
out:
	close(fd);
	return rc;
}

static int run_file(const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = slurp(path, &buf, &len);

	if (rc) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(-rc));
		return rc;
	}
	/* Named before it runs: a crash leaves the culprit on stderr. */
	fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

static int only_files(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Return: how many files ran, or -errno. */
static int run_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, only_files, alphasort), i, ran = 0, rc = 0;

	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		char path[4096];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (!rc && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
			rc = run_file(path);
			ran++;
		}
		free(names[i]);
	}
	free(names);
	return rc ? rc : ran;
}

int main(int argc, char **argv)
{
	int i, total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR-OR-FILE...\n", argv[0]);
		return 2;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++) {
		struct stat sb;
		int n;

		if (stat(argv[i], &sb) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(sb.st_mode))
			n = run_dir(argv[i]);
		else
			n = run_file(argv[i]) ? -EIO : 1;
		if (n < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(-n));
			return 1;
		}
		if (n == 0) {
			fprintf(stderr, "replay: %s: no inputs\n", argv[i]);
			return 1;
		}
		total += n;
	}
	printf("replay: %d inputs, no crash\n", total);
	return 0;
}
