/* SPDX-License-Identifier: MIT */
/*
 * api.c - ns_stack_checkpoint() and ns_stack_restore(): the sequence of a
 * checkpoint (quiesce, freeze the clock, hooks, capture, write, resume or
 * stay stopped, count the attempt) and of a restore (validate the whole
 * image first, continue the clock, build the stack, load its memory in the
 * foreground or start loading it in the background, count). The state comes
 * from netstack/ as plain C; image.c owns the format, memfile.c the pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "image.h"
#include "internal.h"
#include "memfile.h"
#include "state.h"

#define WHY_MAX 256

int ns_stack_checkpoint(struct ns_stack *s, const char *dir, const struct ns_checkpoint_opts *opts)
{
	struct ns_checkpoint_opts def = { 0 };
	struct ns_state st = { 0 };
	struct ckpt_sidecar side;
	struct mf_save *pages = NULL;
	char why[WHY_MAX] = "";
	bool was_running;
	int rc;

	if (!s)
		return -EINVAL;
	if (!opts)
		opts = &def;
	ns_lock(s);
	was_running = s->running;
	ns_unlock(s);
	if (!dir || !dir[0]) {
		rc = -EINVAL;
		goto count;
	}
	if (opts->compression != NS_COMPRESSION_NONE && opts->compression != NS_COMPRESSION_ZSTD) {
		rc = -EINVAL;
		goto count;
	}
	/* Quiesce: no frame is read and no timer fires from here on, and the
	 * stack's time stands still while the image is written. Frames are
	 * written to the endpoints synchronously, so none is left queued. */
	if (was_running)
		ns_stack_stop(s);
	ns_lock(s);
	tw_clock_freeze(tcpip_clock());
	ns_unlock(s);
	rc = ns_hooks_run(s, NS_HOOK_PRE_CHECKPOINT);
	if (!rc) {
		ns_lock(s);
		rc = ns_state_save(s, &st);
		st.checkpoint_count = (uint64_t)s->ckpt_count + 1;	/* this attempt */
		ns_unlock(s);
	}
	/* The memory regions go beside the state, written in parallel. */
	if (!rc)
		rc = mf_save_prepare(s, opts, &st, &side, &pages, why, sizeof(why));
	if (!rc)
		rc = ckpt_image_write_with(dir, &st, pages ? &side : NULL, why, sizeof(why));
	mf_save_free(pages);
	ns_state_release(&st);
	/* A failed checkpoint changes nothing: the stack resumes, as runsc
	 * leaves a sandbox running when its checkpoint fails. */
	if (opts->leave_running || rc) {
		ns_lock(s);
		tw_clock_thaw(tcpip_clock());
		ns_unlock(s);
		if (was_running)
			ns_stack_start(s);
	} else {
		ns_lock(s);
		s->tx_frozen = true;	/* until ns_stack_start() resumes it */
		ns_unlock(s);
	}
count:
	ns_lock(s);
	if (rc)
		ns_log(s, NS_LOG_ERR, "checkpoint to %s failed: %s", dir ? dir : "(null)",
		       why[0] ? why : strerror(-rc));
	ns_checkpoint_done(s, rc);
	ns_unlock(s);
	return rc;
}

static void say(char *why, size_t whylen, const char *fmt, const char *arg)
{
	if (why && whylen)
		snprintf(why, whylen, fmt, arg);
}

int ns_stack_restore(const char *dir, const struct ns_restore_opts *opts,
		     struct ns_stack **stackp, char *why, size_t whylen)
{
	struct ns_restore_opts def = { 0 };
	struct ns_state st = { 0 };
	struct mf_restore *pages = NULL;
	char reason[WHY_MAX] = "";
	struct ns_stack *s;
	bool serve_first;
	int rc;

	if (!dir || !stackp)
		return -EINVAL;
	if (!opts)
		opts = &def;
	/* Everything is validated before anything is created. */
	rc = ckpt_image_read(dir, &st, reason, sizeof(reason));
	if (!rc)
		rc = mf_restore_prepare(dir, &st, opts, &pages, reason, sizeof(reason));
	if (rc) {
		say(why, whylen, "%s", reason);
		ns_state_release(&st);
		return rc;
	}
	rc = tcpip_clock_continue(st.clock_ns);
	if (rc) {
		say(why, whylen, "%s", "restore needs a fresh process: a stack existed here before");
		goto out;
	}
	rc = ns_stack_new(opts->config, &s);
	if (rc) {
		say(why, whylen, "cannot create the stack: %s", strerror(-rc));
		goto out;
	}
	rc = ns_state_load(s, &st, opts->endpoints, opts->nendpoints);
	if (rc) {
		say(why, whylen, "cannot rebuild the stack from the image: %s", strerror(-rc));
		ns_stack_free(s);
		goto out;
	}
	ns_lock(s);
	s->restored = true;
	ns_checkpoint_done(s, 0);	/* a restore counts as an attempt */
	ns_unlock(s);
	/* A background restore that starts the stack starts it before the
	 * page loader: creating the loader's threads and its first reads
	 * then cannot hold up the dispatcher's start (4 GiB: restore median
	 * 3.2 -> 1.6 ms, README "The memory file"). What the loader can fail
	 * on for want of a kernel feature or a lease was checked with the
	 * image, before anything was made. */
	serve_first = pages && opts->background && opts->start;
	if (serve_first && (rc = ns_stack_start(s))) {
		say(why, whylen, "cannot start the stack: %s", strerror(-rc));
		ns_stack_free(s);
		goto out;
	}
	if (pages) {
		rc = mf_restore_attach(s, pages, reason, sizeof(reason));
		pages = NULL;
		/* Foreground: every page is in before the stack serves. */
		if (!rc && !opts->background && (rc = ns_memfile_wait(s, -1))) {
			struct ns_memfile_progress p;

			ns_memfile_progress(s, &p);
			snprintf(reason, sizeof(reason), "%s/%s", dir, p.why);
		}
		if (rc) {
			say(why, whylen, "%s", reason);
			ns_stack_free(s);
			goto out;
		}
	}
	if (opts->start && !serve_first && (rc = ns_stack_start(s))) {
		say(why, whylen, "cannot start the stack: %s", strerror(-rc));
		ns_stack_free(s);
		goto out;
	}
	*stackp = s;
out:
	mf_restore_free(pages);
	ns_state_release(&st);
	return rc;
}
