/* SPDX-License-Identifier: MIT */
/*
 * uffd.c - demand paging of a background restore with userfaultfd: the
 * restored regions are registered for missing-page faults, so a thread that
 * touches a page whose chunk is not loaded yet blocks in the kernel while
 * this file's handler thread moves that chunk to the front of the load
 * queue; the loader then installs the chunk's pages, whole and checked,
 * with UFFDIO_COPY, which wakes the thread. Pages of no chunk (zero pages)
 * are answered with UFFDIO_ZEROPAGE at once; a chunk that failed to load
 * becomes zero pages too (its awaiters get -EIO; a plain touch cannot be
 * told). Once everything is in, the regions are unregistered and faults
 * are the kernel's business again. Nobody needs ns_memfile_await().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memfile.h"

#define UFFD_MSG_BATCH 16

/* A userfaultfd that also handles faults taken in the kernel (a read(2)
 * into the region): the syscall, or /dev/userfaultfd where the syscall is
 * restricted (vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE). */
static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), dev, err;

	if (fd >= 0)
		return fd;
	err = errno;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -err;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	err = errno;
	close(dev);
	return fd < 0 ? -err : fd;
}

static void wake_range(struct ns_memfile *mf, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	ioctl(mf->uffd, UFFDIO_WAKE, &r);
}

int mf_uffd_install(struct ns_memfile *mf, const struct mf_chunk *c, const uint8_t *bytes)
{
	uint64_t dst = (uint64_t)(uintptr_t)(mf->regions[c->region]->addr + c->off);
	uint64_t done = 0;

	while (done < c->len) {
		struct uffdio_copy cp = { .dst = dst + done, .src = (uint64_t)(uintptr_t)(bytes + done),
					  .len = c->len - done };

		if (ioctl(mf->uffd, UFFDIO_COPY, &cp) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		if (cp.copy > 0)	/* partly done: the mm changed under it */
			done += (uint64_t)cp.copy;
	}
	return 0;
}

void mf_uffd_zero(struct ns_memfile *mf, const struct mf_chunk *c)
{
	uint64_t start = (uint64_t)(uintptr_t)(mf->regions[c->region]->addr + c->off);
	uint64_t done = 0;

	while (done < c->len) {
		struct uffdio_zeropage z = { .range = { .start = start + done, .len = c->len - done } };

		if (ioctl(mf->uffd, UFFDIO_ZEROPAGE, &z) == 0)
			return;
		if (errno == EAGAIN && z.zeropage > 0) {
			done += (uint64_t)z.zeropage;
			continue;
		}
		if (errno != EAGAIN)
			break;
	}
	/* Some pages were there already (EEXIST): wake whoever waits. */
	wake_range(mf, start, c->len);
}

/* A thread faulted on the page at @addr. */
static void fault(struct ns_memfile *mf, uint64_t addr)
{
	struct ns_region *r = NULL;
	struct uffdio_zeropage z;
	size_t lo, hi;
	uint8_t state;

	addr &= ~(uint64_t)(CKPT_PAGE - 1);
	pthread_mutex_lock(&mf->mu);
	for (unsigned i = 0; i < mf->nregions; i++) {
		uint64_t base = (uint64_t)(uintptr_t)mf->regions[i]->addr;

		if (addr >= base && addr < base + mf->regions[i]->size)
			r = mf->regions[i];
	}
	if (!r) {
		pthread_mutex_unlock(&mf->mu);
		return;
	}
	mf_chunk_span(mf, r, addr - (uint64_t)(uintptr_t)r->addr, CKPT_PAGE, &lo, &hi);
	state = lo < hi ? mf->chunks[lo].state : MF_FAILED;
	if (lo < hi && state == MF_PENDING)
		mf_prioritise(mf, lo, hi);	/* the loader's UFFDIO_COPY wakes it */
	pthread_mutex_unlock(&mf->mu);
	if (lo < hi && (state == MF_PENDING || state == MF_INFLIGHT))
		return;
	if (lo < hi) {
		/* Installed (or zeroed) since the fault was raised. */
		wake_range(mf, addr, CKPT_PAGE);
		return;
	}
	/* A zero page of the image: nothing to load. */
	z = (struct uffdio_zeropage){ .range = { .start = addr, .len = CKPT_PAGE } };
	if (ioctl(mf->uffd, UFFDIO_ZEROPAGE, &z) < 0)
		wake_range(mf, addr, CKPT_PAGE);
}

/* mf->mu held: regions may be added once loading is over. */
static void unregister_all(struct ns_memfile *mf)
{
	for (unsigned i = 0; i < mf->nregions; i++) {
		struct uffdio_range r = { .start = (uint64_t)(uintptr_t)mf->regions[i]->addr,
					  .len = mf->regions[i]->size };

		ioctl(mf->uffd, UFFDIO_UNREGISTER, &r);
	}
}

static void *handler_main(void *arg)
{
	struct ns_memfile *mf = arg;
	struct pollfd pfd[2] = { { .fd = mf->uffd, .events = POLLIN },
				 { .fd = mf->uffd_stopfd, .events = POLLIN } };
	struct uffd_msg msg[UFFD_MSG_BATCH];

	for (;;) {
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		n = read(mf->uffd, msg, sizeof(msg));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				fault(mf, msg[i].arg.pagefault.address);
	}
	/* Everything is in (or the stack goes): faults are the kernel's again;
	 * unregistering wakes any thread still waiting. */
	pthread_mutex_lock(&mf->mu);
	unregister_all(mf);
	pthread_mutex_unlock(&mf->mu);
	return NULL;
}

int mf_uffd_open(char *why, size_t whylen)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = uffd_open(), rc;

	if (fd < 0)
		return ckpt_fail(why, whylen, fd, "demand paging: userfaultfd: %s", strerror(-fd));
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		rc = ckpt_fail(why, whylen, -errno, "demand paging: UFFDIO_API: %s", strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

int mf_uffd_start(struct ns_memfile *mf, char *why, size_t whylen)
{
	const uint64_t need = 1ull << _UFFDIO_COPY | 1ull << _UFFDIO_ZEROPAGE | 1ull << _UFFDIO_WAKE;
	int fd = mf->uffd, rc;

	for (unsigned i = 0; i < mf->nregions; i++) {
		struct uffdio_register reg = {
			.range = { .start = (uint64_t)(uintptr_t)mf->regions[i]->addr,
				   .len = mf->regions[i]->size },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0 || (reg.ioctls & need) != need) {
			rc = ckpt_fail(why, whylen, errno ? -errno : -ENOTSUP,
				       "demand paging: cannot register region '%s': %s",
				       mf->regions[i]->name, strerror(errno ? errno : ENOTSUP));
			goto fail;
		}
	}
	mf->uffd_stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mf->uffd_stopfd < 0) {
		rc = ckpt_fail(why, whylen, -errno, "demand paging: eventfd: %s", strerror(errno));
		goto fail;
	}
	rc = -pthread_create(&mf->uffd_thread, NULL, handler_main, mf);
	if (rc) {
		ckpt_fail(why, whylen, rc, "demand paging: cannot start the handler: %s",
			  strerror(-rc));
		goto fail;
	}
	mf->uffd_running = true;
	return 0;
fail:
	unregister_all(mf);
	close(fd);
	mf->uffd = -1;
	if (mf->uffd_stopfd >= 0)
		close(mf->uffd_stopfd);
	mf->uffd_stopfd = -1;
	return rc;
}

/* Called when loading ends and when the stack goes; idempotent. */
void mf_uffd_stop(struct ns_memfile *mf)
{
	uint64_t one = 1;

	if (!mf->uffd_running)
		return;
	if (write(mf->uffd_stopfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return;	/* cannot happen with an eventfd; never join a thread we cannot stop */
	pthread_join(mf->uffd_thread, NULL);
	mf->uffd_running = false;
}
