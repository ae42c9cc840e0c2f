/* SPDX-License-Identifier: MIT */
/*
 * imgdir.h - a fresh directory for a unit test's checkpoint image.
 */
#ifndef NETSTACK_TESTS_IMGDIR_H
#define NETSTACK_TESTS_IMGDIR_H

#include <stddef.h>

/*
 * imgdir_make() - make /tmp/<prefix>-XXXXXX and name the image in it
 * @prefix: the directory's name before the random part
 * @img: receives "<that directory>/img" (not created: a checkpoint makes it)
 * @cap: room in @img
 *
 * mkdtemp, not the pid: a directory a dead test left behind could be met
 * again once pids wrap, and a checkpoint never writes over an image. A
 * Criterion assertion on failure.
 */
void imgdir_make(const char *prefix, char *img, size_t cap);

/* imgdir_remove() - remove the directory imgdir_make() made last, if any. */
void imgdir_remove(void);

#endif /* NETSTACK_TESTS_IMGDIR_H */
