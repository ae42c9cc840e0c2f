/* SPDX-License-Identifier: MIT */
/*
 * imgdir.c - a fresh directory for a unit test's checkpoint image.
 */
#define _GNU_SOURCE
#include "imgdir.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char parent[128];

void imgdir_make(const char *prefix, char *img, size_t cap)
{
	snprintf(parent, sizeof(parent), "/tmp/%s-XXXXXX", prefix);
	cr_assert_not_null(mkdtemp(parent), "mkdtemp: %s", strerror(errno));
	snprintf(img, cap, "%s/img", parent);
}

void imgdir_remove(void)
{
	char cmd[300];

	if (!parent[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", parent);
	if (system(cmd)) {
	}
	parent[0] = '\0';
}
