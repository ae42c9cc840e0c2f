/* SPDX-License-Identifier: MIT */
/*
 * netstack.h - the public API of libnetstack, a user-space TCP/IP stack for
 * sandboxes built on lwIP. This is the only installed header: the stack
 * object and its lifecycle, link endpoints (TAP, packet fd, in-memory
 * channel), NICs, addresses, routes, and a BSD-like socket API with blocking,
 * nonblocking and poll semantics.
 *
 * Theory of operation
 * -------------------
 * lwIP keeps global state, so one process hosts one stack: ns_stack_new()
 * fails with -EBUSY while another stack exists. A started stack runs one
 * dispatcher thread that waits on its link endpoints, a wakeup eventfd and
 * the next protocol timer, feeds received frames to lwIP in batches and fires
 * expired timers. Every function below may be called from any thread: each
 * call takes the stack lock, works on lwIP, and releases it. Blocking calls
 * (accept, connect, send, recv and their variants, ns_poll) wait on readiness
 * with the lock released; nothing polls.
 *
 * Errors: every function returns 0 (or a non-negative value) on success and
 * a negative errno on failure; errno itself is never written.
 *
 * Ownership: the creator frees. An endpoint belongs to its creator until
 * ns_nic_add() succeeds; from then on the stack owns it and frees it with the
 * NIC. Buffers passed in are only read (or written) for the duration of the
 * call; nothing is retained.
 */
#ifndef NETSTACK_H
#define NETSTACK_H

#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NS_BUILDING_LIBRARY)
#define NS_EXPORT __attribute__((visibility("default")))
#else
#define NS_EXPORT
#endif

#define NS_VERSION_MAJOR 0
#define NS_VERSION_MINOR 1

struct ns_stack;
struct ns_endpoint;

/* ------------------------------------------------------------------ */
/* Stack lifecycle                                                     */
/* ------------------------------------------------------------------ */

/* Log levels, as syslog's. */
enum ns_log_level {
	NS_LOG_ERR = 3,
	NS_LOG_WARNING = 4,
	NS_LOG_INFO = 6,
	NS_LOG_DEBUG = 7,
};

/**
 * typedef ns_log_fn - where the stack's log lines go
 * @arg: the config's log_arg
 * @level: an enum ns_log_level
 * @msg: one line without a newline; valid only during the call
 *
 * Called with the stack lock held: it must not call back into the stack.
 */
typedef void (*ns_log_fn)(void *arg, int level, const char *msg);

struct ns_stack_config {
	unsigned max_sockets;	/* socket table size; 0 = 65536 */
	int log_level;		/* lines above this level are dropped; 0 = NS_LOG_INFO */
	ns_log_fn log;		/* NULL = stderr, prefixed "netstack: " */
	void *log_arg;
	/*
	 * Limits (see also max_sockets). Past one, the work is refused, never
	 * the process: ns_socket()/ns_accept() get -EMFILE at max_sockets;
	 * listen() backlogs are clamped to max_backlog, and SYNs beyond it are
	 * dropped; SO_RCVBUF/SO_SNDBUF are clamped to max_sock_buf; received
	 * data beyond max_rx_total is held back (TCP: lwIP keeps it, the peer
	 * retransmits) or dropped (UDP); an lwIP allocation that would take
	 * it past max_memory fails as on a full heap (frames dropped and
	 * counted, new sockets -ENOMEM, sends -EAGAIN/-ENOBUFS); the last
	 * eighth of it is kept for received frames, so the ACKs and RSTs
	 * that free memory still get in, and out-of-order TCP data (never
	 * acknowledged) is dropped first.
	 */
	unsigned max_backlog;	/* 1..255 (lwIP's u8); 0 = 255 */
	size_t max_sock_buf;	/* 2 KiB..1 GiB; 0 = 64 MiB */
	size_t max_memory;	/* all lwIP allocations; >= 64 KiB; 0 = 512 MiB */
	size_t max_rx_total;	/* unread received bytes over all sockets;
				 * at most max_memory; 0 = max_memory / 2 */
	/*
	 * Busy polling: the thread blocked in the API that waits on the link
	 * itself (one at a time; others wait for it) first polls the link,
	 * while it is busy (the last such wait got a frame within this time),
	 * for up to this long before it sleeps, so a sender feeding a
	 * steady stream need not wake it for every frame (a wakeup is a
	 * cross-CPU interrupt the sender pays for). Costs CPU only while
	 * traffic flows; an idle link is never polled. The poll yields the
	 * CPU between looks, so a peer on the same CPU still runs.
	 */
	int busy_poll_us;	/* 1..1000; 0 = 50; -1 = never */
};

/**
 * ns_stack_new() - create the process's stack
 * @cfg: configuration, or NULL for defaults; copied
 * @stackp: receives the stack
 *
 * Return: 0, -EBUSY if a stack already exists in this process, -EINVAL,
 * -ENOMEM.
 */
NS_EXPORT int ns_stack_new(const struct ns_stack_config *cfg, struct ns_stack **stackp);

/**
 * ns_stack_start() - start the dispatcher thread
 * @s: the stack
 *
 * NICs and sockets may be configured before or after start; frames are only
 * read from the endpoints, and timers only fire, while the stack runs.
 *
 * Return: 0, -EALREADY if running, -errno if the thread cannot be created.
 */
NS_EXPORT int ns_stack_start(struct ns_stack *s);

/**
 * ns_stack_stop() - stop the dispatcher thread and wait for it
 * @s: the stack
 *
 * Sockets and NICs stay as they are; ns_stack_start() resumes.
 *
 * Return: 0, -EALREADY if not running, -EDEADLK if called from the
 * dispatcher thread.
 */
NS_EXPORT int ns_stack_stop(struct ns_stack *s);

/**
 * ns_stack_free() - stop the stack and free it with all its NICs and sockets
 * @s: the stack, or NULL
 *
 * Threads blocked in the API must have returned first (close their sockets).
 */
NS_EXPORT void ns_stack_free(struct ns_stack *s);

/**
 * ns_stack_notify_fd() - one fd for an embedder's event loop
 * @s: the stack
 *
 * The fd (an eventfd, owned by the stack) becomes readable whenever some
 * socket's readiness may have changed. Read it to reset it, then find out
 * what changed with ns_poll() and a zero timeout.
 *
 * Return: the fd, never negative for a valid stack; -EINVAL for NULL.
 */
NS_EXPORT int ns_stack_notify_fd(struct ns_stack *s);

/* Stack-wide counters. Frames the stack refused are counted, never trusted. */
struct ns_stats {
	uint64_t rx_frames;	/* frames read from all endpoints */
	uint64_t tx_frames;	/* frames written to all endpoints */
	uint64_t rx_bytes;
	uint64_t tx_bytes;
	uint64_t rx_malformed;	/* dropped before lwIP: runt, oversized, bad length */
	uint64_t rx_dropped;	/* dropped by the protocols: checksum, length, unknown, no memory */
	uint64_t tx_dropped;	/* the endpoint refused or could not take the frame */
	uint64_t ip_chkerr;
	uint64_t ip_lenerr;
	uint64_t tcp_chkerr;
	uint64_t udp_chkerr;
	uint64_t udp_rcvbuf_drops; /* datagrams dropped on a full receive queue */
	/* SYN cookies (a listener's backlog full of half-open connections);
	 * counted by the process, as lwIP's own counters are. */
	uint64_t syncookies_sent;	/* SYN-ACKs carrying a cookie */
	uint64_t syncookies_validated;	/* ACKs whose cookie made a connection */
	uint64_t syncookies_failed;	/* ACKs to a listener in cookie mode with no valid cookie */
	uint64_t busy_poll_hits;	/* waits a busy poll answered (no sleep, no wakeup) */
};

/**
 * ns_stack_stats() - read the stack's counters
 * @s: the stack
 * @st: filled in
 *
 * Return: 0 or -EINVAL.
 */
NS_EXPORT int ns_stack_stats(struct ns_stack *s, struct ns_stats *st);

/* What the stack holds now against its limits, and how often a limit
 * refused work since the process started. Levels, not counters of
 * traffic: they are not saved in a checkpoint. */
struct ns_usage {
	uint64_t sockets;	/* open now */
	uint64_t max_sockets;
	uint64_t sock_refused;	/* ns_socket()/ns_accept() that got -EMFILE */
	uint64_t mem_used;	/* bytes lwIP holds, allocator headers included */
	uint64_t mem_peak;	/* the most it has held */
	uint64_t max_memory;
	uint64_t mem_refused;	/* lwIP allocations refused at max_memory */
	uint64_t mem_pruned;	/* bytes of out-of-order TCP data dropped to make room */
	uint64_t rx_queued;	/* unread received bytes over all sockets */
	uint64_t max_rx_total;
	uint64_t rx_refused;	/* segments held back, datagrams dropped at max_rx_total */
};

/**
 * ns_stack_usage() - read the stack's usage against its limits
 * @s: the stack
 * @u: filled in
 *
 * Return: 0 or -EINVAL.
 */
NS_EXPORT int ns_stack_usage(struct ns_stack *s, struct ns_usage *u);

/* ------------------------------------------------------------------ */
/* Checkpoint and restore                                              */
/* ------------------------------------------------------------------ */

/*
 * A checkpoint writes the stack's state to a new image directory: the
 * stack clock, NICs, addresses, routes, TCP listeners and UDP sockets under
 * their socket numbers, counters. Established TCP connections are not
 * saved: without leave_running the process is expected to go away, and
 * after a restore their peers' next segments get RST, as from a rebooted
 * host. Restore builds the stack again in a fresh process, with the stack
 * clock continuing from the saved value (TCP timestamps keep rising).
 */

/* How pages.img holds the memory regions' pages. */
enum ns_compression {
	NS_COMPRESSION_NONE = 0,	/* as they are: loads straight into memory */
	NS_COMPRESSION_ZSTD = 1,	/* zstd, in independent chunks */
};

struct ns_checkpoint_opts {
	bool leave_running;	/* resume afterwards; else the stack stays stopped */
	enum ns_compression compression;
	bool direct;		/* write pages.img with O_DIRECT (bypass the page cache) */
};

/**
 * typedef ns_hook_fn - an embedder's checkpoint hook
 * @s: the stack
 * @arg: the arg given with the hook
 *
 * Pre-checkpoint hooks run after the stack is quiesced (no frames read, the
 * clock frozen), before the image is written; a negative return fails the
 * checkpoint. Post-restore hooks run once the restored stack serves. Hooks
 * run without the stack lock and may call the API.
 *
 * Return: 0 or a negative errno.
 */
typedef int (*ns_hook_fn)(struct ns_stack *s, void *arg);

enum ns_hook_kind {
	NS_HOOK_PRE_CHECKPOINT,
	NS_HOOK_POST_RESTORE,
};

/**
 * ns_stack_add_hook() - register a checkpoint hook (at most 8 per kind)
 * @s: the stack
 * @kind: when it runs
 * @fn: the hook
 * @arg: passed to @fn
 *
 * Return: 0, -EINVAL, -ENOSPC.
 */
NS_EXPORT int ns_stack_add_hook(struct ns_stack *s, enum ns_hook_kind kind, ns_hook_fn fn, void *arg);

/**
 * ns_stack_checkpoint() - write the stack's state to an image directory
 * @s: the stack; running or not
 * @dir: a directory that does not exist yet or is empty; never a symlink
 * @opts: options, or NULL for defaults (stop afterwards, no compression)
 *
 * Quiesces the stack (stops reading the link endpoints, freezes the clock),
 * runs the pre-checkpoint hooks, writes the image (temporary names, fsync,
 * rename: a failure never leaves an image that looks complete), then
 * resumes if @opts->leave_running. A failed checkpoint always resumes: it
 * changes nothing but the count. Otherwise, after a successful checkpoint,
 * the stack stays stopped and silent: closing its sockets or freeing it sends
 * nothing (no FIN, no RST), so peers see a frozen host and, after a restore,
 * get RST for connections that were not saved; ns_stack_start() resumes it.
 * Every attempt, failed or not, counts and wakes ns_stack_checkpoint_wait().
 *
 * With memory regions (ns_memfile_region_create()), their non-zero pages
 * are written beside the state, in parallel with it, as pages.meta and
 * pages.img (@opts->compression, @opts->direct); a restore that is still
 * loading pages is waited for first.
 *
 * Return: 0, -EEXIST (directory not empty), -EINVAL (bad options; also
 * @opts->direct on a file system without O_DIRECT), -EIO (a restore's
 * pages failed to load), a hook's error, -errno from the file system.
 */
NS_EXPORT int ns_stack_checkpoint(struct ns_stack *s, const char *dir, const struct ns_checkpoint_opts *opts);

/* One embedder-supplied endpoint for a restored NIC, matched by NIC name. */
struct ns_restore_endpoint {
	const char *nic_name;
	struct ns_endpoint *ep;	/* the stack owns it once restore succeeds */
};

/* Which page loader restores memory regions (see ns_memfile_progress()). */
enum ns_memfile_backend {
	NS_MEMFILE_AUTO = 0,	/* io_uring, else the thread pool */
	NS_MEMFILE_IO_URING,	/* io_uring or fail (-ENOSYS, -EPERM, ...) */
	NS_MEMFILE_THREADS,	/* a pool of threads doing preadv() */
	NS_MEMFILE_MAP,		/* map or fail (-EOPNOTSUPP, -EAGAIN, ...), below */
};

/*
 * Mapping (NS_MEMFILE_MAP, asked for, never chosen by AUTO): an uncompressed
 * pages.img read through the page cache (not direct, no demand_paging) is
 * not copied. Each run of pages is mapped privately from pages.img into
 * its region and its CRC32C checked there, so a page stays the page
 * cache's until written (copy on write): loading costs about what reading
 * the file once does, and the restores of one image share the pages
 * nobody writes. The stack holds a read lease on pages.img meanwhile:
 * whoever opens it for writing waits (up to fs.lease-break-time) while the
 * stack copies every mapped page and loads the rest, so a write in place
 * never shows through; what it could not copy in that time fails (-EIO),
 * never passes for loaded. What it cannot guard against is truncation
 * (cp over the image, a shell's >, any open with O_TRUNC): the kernel
 * takes even the copied pages of a truncated range away, with what the
 * embedder wrote there, and the range then shows the file's new bytes, or
 * is SIGBUS past its new end. So while a stack maps pages.img, the image
 * must stay as it is (replace an image by renaming, as
 * ns_stack_checkpoint() does), and readable: pages the kernel drops under
 * memory pressure are read again from it. Needs a lease (the file's owner
 * or CAP_LEASE, fs.leases-enable, a local file system), fs.lease-break-time
 * long enough for that copy, and room in vm.max_map_count for two mappings
 * per run of pages; otherwise the restore is refused with the reason,
 * before anything is made.
 */
struct ns_restore_opts {
	const struct ns_stack_config *config;	/* NULL: defaults */
	/* NICs not listed here are re-attached by kind: a TAP by its device
	 * name; an fd or channel NIC must be listed. */
	const struct ns_restore_endpoint *endpoints;
	size_t nendpoints;
	bool start;		/* start the dispatcher (default false) */
	/* The memory file (only when the image has one). Foreground (the
	 * default) returns once every page is in; background returns once the
	 * stack is built (and started) while pages keep loading: use
	 * ns_memfile_await() before touching a range. */
	bool background;
	bool direct;		/* read pages.img with O_DIRECT */
	enum ns_memfile_backend backend;
	unsigned read_kib;	/* largest read, KiB; 0: 256 */
	/* Reads in flight (io_uring) or threads (pool, map). 0: 64, 8 in the
	 * background (pool: 4 threads, map: 2; 1 in the background). */
	unsigned queue_depth;
	unsigned loaders;	/* io_uring loader threads; 0: 2 (1 in the background) */
	/* With background: register the regions with userfaultfd, so that a
	 * thread touching a page not loaded yet waits while its chunk jumps
	 * the queue; no ns_memfile_await() needed. Pages arrive whole and
	 * checked (UFFDIO_COPY from a bounce buffer: one more copy than plain
	 * loading). Fails the restore if userfaultfd is not available. */
	bool demand_paging;
};

/**
 * ns_stack_restore() - build a stack from an image, in a fresh process
 * @dir: the image directory
 * @opts: options, or NULL
 * @stackp: receives the stack
 * @why: receives one line saying why a restore was refused, or NULL
 * @whylen: room in @why
 *
 * The whole image is read and validated before anything is created. The
 * stack clock continues from the saved value, so this must run before any
 * other stack was created in the process (-EBUSY otherwise). An image with
 * memory regions gets them back (find them with ns_memfile_region_find()):
 * in the foreground every page is loaded and checked before this returns
 * (a missing, short or damaged pages.img fails the restore); with
 * @opts->background it returns at once and pages keep loading, a damaged
 * range failing with -EIO in ns_memfile_await() alone.
 *
 * Return: 0, -ENOENT, -EINVAL/-EBADMSG/-EPROTO (a bad, truncated, foreign
 * or newer image), -EBUSY, -ENODEV (a NIC's endpoint could not be had),
 * -EIO (foreground: pages failed to load), -ENOSYS etc. (the io_uring
 * backend demanded and not available), -errno.
 */
NS_EXPORT int ns_stack_restore(const char *dir, const struct ns_restore_opts *opts,
			       struct ns_stack **stackp, char *why, size_t whylen);

/**
 * ns_stack_checkpoint_count() - checkpoint attempts so far (restore counts)
 * @s: the stack
 * @last_result: receives the last attempt's result (0 or -errno), or NULL
 *
 * Return: the count (>= 0), -EINVAL.
 */
NS_EXPORT int64_t ns_stack_checkpoint_count(struct ns_stack *s, int *last_result);

/**
 * ns_stack_checkpoint_wait() - wait for the next checkpoint attempt
 * @s: the stack
 * @seen: a count from ns_stack_checkpoint_count(); waits until it grows
 * @timeout_ms: -1 forever
 *
 * Return: the result of the attempt that ended the wait (0 or -errno),
 * -ETIMEDOUT, -EINVAL.
 */
NS_EXPORT int ns_stack_checkpoint_wait(struct ns_stack *s, int64_t seen, int timeout_ms);

/* ------------------------------------------------------------------ */
/* The memory file                                                     */
/* ------------------------------------------------------------------ */

/*
 * An embedder's memory (its sandbox's) lives in named regions the stack
 * owns: a checkpoint saves their non-zero pages beside the state (pages.meta
 * and pages.img) and a restore maps fresh regions and loads them back,
 * through io_uring or a thread pool. Zero pages cost nothing. A region's
 * memory is valid until ns_stack_free().
 */
struct ns_region;

#define NS_REGION_NAME_MAX 32	/* bytes, with the NUL */

/**
 * ns_memfile_region_create() - give the stack a region of memory to save
 * @s: the stack
 * @name: 1..31 bytes, unique in the stack
 * @size: bytes (rounded up to the page size), at most 1 TiB
 * @rp: receives the region; ns_region_addr() is its zero-filled memory
 *
 * Return: 0, -EINVAL, -EEXIST (the name is taken), -ENOSPC (64 regions
 * already), -ENOMEM, -EBUSY (a restore is still loading pages).
 */
NS_EXPORT int ns_memfile_region_create(struct ns_stack *s, const char *name, size_t size,
				       struct ns_region **rp);

/**
 * ns_memfile_region_find() - a region by name (after a restore, say)
 * @s: the stack
 * @name: its name
 * @rp: receives it
 *
 * Return: 0, -EINVAL, -ENOENT.
 */
NS_EXPORT int ns_memfile_region_find(struct ns_stack *s, const char *name,
				     struct ns_region **rp);

/* The region's memory and its size in bytes (a page multiple). */
NS_EXPORT void *ns_region_addr(const struct ns_region *r);
NS_EXPORT size_t ns_region_size(const struct ns_region *r);

/**
 * ns_memfile_await() - wait until a range of a region is loaded
 * @r: the region
 * @offset: first byte
 * @length: bytes; 0 is a no-op
 *
 * The range's pages move to the front of the load queue and the call waits
 * for them alone. A region that was not restored, or whose pages are all
 * in, returns at once. Never returns 0 for a range whose bytes did not load
 * and check out: such a range reads as zeros, and the call says -EIO.
 *
 * Return: 0, -EINVAL (out of the region), -EIO (a read failed, came up
 * short, or a chunk's CRC did not match), -ECANCELED (the stack is being
 * freed).
 */
NS_EXPORT int ns_memfile_await(struct ns_region *r, uint64_t offset, uint64_t length);

/**
 * ns_memfile_wait() - wait until every page of every region is in
 * @s: the stack
 * @timeout_ms: -1 forever
 *
 * Return: 0, -EIO (some range failed to load), -ETIMEDOUT, -EINVAL.
 */
NS_EXPORT int ns_memfile_wait(struct ns_stack *s, int timeout_ms);

struct ns_memfile_progress {
	unsigned regions;
	uint64_t bytes;		/* all regions' sizes */
	uint64_t data_bytes;	/* of them, in non-zero pages: what loads */
	uint64_t loaded_bytes;	/* of those, in and checked */
	uint64_t failed_bytes;	/* of those, failed (-EIO to awaiters) */
	uint64_t rate_bps;	/* loaded bytes per second so far */
	uint64_t elapsed_ns;	/* since loading began (until it ended) */
	bool loading;		/* a restore's loader is at work */
	bool done;		/* nothing left to load (also: never restored) */
	int error;		/* 0, or the first failure (-EIO, ...) */
	char why[160];		/* the first failure, one line */
	const char *backend;	/* "map", "io_uring", "threads", or "none" */
	bool demand_paging;	/* userfaultfd serves faults on pages not in yet */
	char fallback[96];	/* why io_uring was not used, if it was not */
};

/**
 * ns_memfile_progress() - how far loading is
 * @s: the stack
 * @p: receives the figures
 *
 * Return: 0, -EINVAL.
 */
NS_EXPORT int ns_memfile_progress(struct ns_stack *s, struct ns_memfile_progress *p);

/* ------------------------------------------------------------------ */
/* Link endpoints                                                      */
/* ------------------------------------------------------------------ */

#define NS_TAP_CREATE 0x1u	/* create the TAP if it does not exist */

/**
 * ns_endpoint_tap_open() - attach to a TAP device (IFF_TAP|IFF_NO_PI)
 * @name: interface name, at most 15 bytes
 * @flags: NS_TAP_CREATE to create it when missing (else -ENODEV)
 * @epp: receives the endpoint
 *
 * Return: 0, -EINVAL, -ENODEV, -EPERM, -errno from the kernel.
 */
NS_EXPORT int ns_endpoint_tap_open(const char *name, unsigned flags, struct ns_endpoint **epp);

/**
 * ns_endpoint_fd_open() - an endpoint on any fd that carries one Ethernet
 * frame per read and per write (a socketpair, an AF_PACKET socket)
 * @fd: the fd; the endpoint takes ownership and closes it when freed, also
 *      on failure
 * @epp: receives the endpoint
 *
 * The fd is made nonblocking. On an AF_PACKET socket the endpoint also asks
 * the kernel not to loop the stack's own transmissions back to it.
 *
 * Return: 0, -EBADF, -ENOMEM.
 */
NS_EXPORT int ns_endpoint_fd_open(int fd, struct ns_endpoint **epp);

/**
 * ns_endpoint_channel_new() - an in-memory endpoint for tests
 * @epp: receives the endpoint
 *
 * Frames written with ns_channel_inject() are received by the stack; frames
 * the stack transmits are kept until ns_channel_read() takes them.
 *
 * Return: 0 or -ENOMEM.
 */
NS_EXPORT int ns_endpoint_channel_new(struct ns_endpoint **epp);

/**
 * ns_channel_inject() - queue one frame for the stack to receive
 * @ep: a channel endpoint
 * @frame: the Ethernet frame; copied
 * @len: its length
 *
 * Return: 0, -EINVAL (not a channel, bad length), -ENOBUFS if the inbound
 * queue is full.
 */
NS_EXPORT int ns_channel_inject(struct ns_endpoint *ep, const void *frame, size_t len);

/**
 * ns_channel_read() - take the oldest frame the stack transmitted
 * @ep: a channel endpoint
 * @buf: where to copy it
 * @cap: room in @buf; a longer frame is truncated
 *
 * Return: the frame's full length, -EAGAIN if none is queued, -EINVAL.
 */
NS_EXPORT ssize_t ns_channel_read(struct ns_endpoint *ep, void *buf, size_t cap);

/**
 * ns_endpoint_free() - free an endpoint that was never added to a NIC
 * @ep: the endpoint, or NULL
 */
NS_EXPORT void ns_endpoint_free(struct ns_endpoint *ep);

/* ------------------------------------------------------------------ */
/* NICs                                                                */
/* ------------------------------------------------------------------ */

#define NS_NIC_NAME_MAX 16

struct ns_nic_config {
	const char *name;	/* NULL = "eth<N>" */
	uint8_t mac[6];		/* all zero = a random locally administered MAC */
	unsigned mtu;		/* 68 .. 65521; 0 = the TAP device's MTU
				 * (clamped to that range), else 1500 */
};

struct ns_nic_info {
	int id;
	char name[NS_NIC_NAME_MAX];
	char kind[8];		/* "tap", "fd", "channel" */
	char device[NS_NIC_NAME_MAX]; /* the TAP's name, else empty */
	uint8_t mac[6];
	unsigned mtu;
	bool up;		/* administratively up */
	bool link_up;		/* the endpoint works; false after it failed */
	uint64_t rx_frames, tx_frames, rx_bytes, tx_bytes;
	uint64_t rx_malformed, tx_dropped;
};

/**
 * ns_nic_add() - add a NIC on an endpoint
 * @s: the stack
 * @cfg: NIC configuration, or NULL for defaults
 * @ep: the endpoint; the stack owns it once this succeeds
 *
 * The NIC starts administratively up, with an IPv6 link-local address
 * derived from its MAC.
 *
 * Return: the NIC id (>= 1), -EINVAL, -EEXIST (name in use), -ENOMEM.
 */
NS_EXPORT int ns_nic_add(struct ns_stack *s, const struct ns_nic_config *cfg, struct ns_endpoint *ep);

/**
 * ns_nic_remove() - remove a NIC, its addresses and routes, and free its
 * endpoint
 * @s: the stack
 * @nic: NIC id
 *
 * Return: 0, -ENODEV.
 */
NS_EXPORT int ns_nic_remove(struct ns_stack *s, int nic);

/**
 * ns_nic_set_up() - bring a NIC administratively up or down
 * @s: the stack
 * @nic: NIC id
 * @up: true for up
 *
 * Return: 0, -ENODEV.
 */
NS_EXPORT int ns_nic_set_up(struct ns_stack *s, int nic, bool up);

/**
 * ns_nic_set_mtu() - change a NIC's MTU
 * @s: the stack
 * @nic: NIC id
 * @mtu: 68 .. 65521
 *
 * Return: 0, -ENODEV, -EINVAL.
 */
NS_EXPORT int ns_nic_set_mtu(struct ns_stack *s, int nic, unsigned mtu);

/**
 * ns_nic_info() - describe a NIC
 * @s: the stack
 * @nic: NIC id
 * @info: filled in
 *
 * Return: 0, -ENODEV, -EINVAL.
 */
NS_EXPORT int ns_nic_info(struct ns_stack *s, int nic, struct ns_nic_info *info);

/**
 * ns_nic_list() - the ids of all NICs, in the order they were added
 * @s: the stack
 * @ids: receives up to @cap ids (may be NULL when @cap is 0)
 * @cap: room in @ids
 *
 * Return: the number of NICs (which may exceed @cap), -EINVAL.
 */
NS_EXPORT int ns_nic_list(struct ns_stack *s, int *ids, size_t cap);

/* ------------------------------------------------------------------ */
/* Addresses and routes                                                */
/* ------------------------------------------------------------------ */

/* An IPv4 or IPv6 address; family 0 means "none". */
struct ns_addr {
	int family;		/* AF_INET, AF_INET6 or 0 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct ns_prefix {
	struct ns_addr addr;
	unsigned len;		/* prefix length: 0..32 or 0..128 */
};

/**
 * ns_addr_parse() - parse "198.51.100.2" or "fd42:5::2"
 * @text: the address
 * @addr: filled in
 *
 * Return: 0 or -EINVAL.
 */
NS_EXPORT int ns_addr_parse(const char *text, struct ns_addr *addr);

/**
 * ns_prefix_parse() - parse a CIDR such as "198.51.100.2/24" or "fd42:5::2/64"
 * @text: the CIDR; without "/len" the full length is taken
 * @p: filled in
 *
 * Return: 0 or -EINVAL.
 */
NS_EXPORT int ns_prefix_parse(const char *text, struct ns_prefix *p);

/**
 * ns_addr_format() - format an address as text
 * @addr: the address
 * @buf: receives a NUL-terminated string
 * @cap: room in @buf; INET6_ADDRSTRLEN is always enough
 *
 * Return: the string length, -EINVAL, -ENOSPC.
 */
NS_EXPORT int ns_addr_format(const struct ns_addr *addr, char *buf, size_t cap);

/**
 * ns_addr_add() - add an address to a NIC
 * @s: the stack
 * @nic: NIC id
 * @p: address and prefix length; the prefix becomes an on-link route
 *
 * lwIP holds one IPv4 address per NIC (a second one is -EEXIST) and up to
 * three IPv6 addresses besides the link-local one. IPv6 addresses are used at
 * once, without duplicate address detection: the sandbox owns its network.
 * lwIP treats every IPv6 prefix as /64 on-link.
 *
 * Return: 0, -ENODEV, -EINVAL, -EEXIST, -ENOSPC.
 */
NS_EXPORT int ns_addr_add(struct ns_stack *s, int nic, const struct ns_prefix *p);

/**
 * ns_addr_del() - remove an address from a NIC
 * @s: the stack
 * @nic: NIC id
 * @p: the address (its length is ignored)
 *
 * Return: 0, -ENODEV, -EADDRNOTAVAIL.
 */
NS_EXPORT int ns_addr_del(struct ns_stack *s, int nic, const struct ns_prefix *p);

/**
 * ns_addr_list() - a NIC's addresses, IPv4 first, link-local included
 * @s: the stack
 * @nic: NIC id
 * @out: receives up to @cap prefixes
 * @cap: room in @out
 *
 * Return: the number of addresses (which may exceed @cap), -ENODEV, -EINVAL.
 */
NS_EXPORT int ns_addr_list(struct ns_stack *s, int nic, struct ns_prefix *out, size_t cap);

struct ns_route {
	struct ns_prefix dst;	/* 0.0.0.0/0 or ::/0 for a default route */
	struct ns_addr gateway;	/* family 0: on-link */
	int nic;		/* 0: the NIC whose subnet holds the gateway */
	unsigned metric;	/* lower wins between equal prefixes */
};

/**
 * ns_route_add() - add a route
 * @s: the stack
 * @r: the route; @r->nic is filled in when 0 is given
 *
 * Return: 0, -EINVAL (mixed families, bad prefix), -ENETUNREACH (no NIC
 * reaches the gateway), -ENODEV, -EEXIST, -ENOMEM.
 */
NS_EXPORT int ns_route_add(struct ns_stack *s, struct ns_route *r);

/**
 * ns_route_del() - delete the route with the same destination, gateway and
 * NIC (@r->nic 0 matches any NIC)
 * @s: the stack
 * @r: the route
 *
 * Return: 0, -ESRCH, -EINVAL.
 */
NS_EXPORT int ns_route_del(struct ns_stack *s, const struct ns_route *r);

/**
 * ns_route_list() - the route table, longest prefix first; on-link routes of
 * the NICs' addresses are included
 * @s: the stack
 * @out: receives up to @cap routes
 * @cap: room in @out
 *
 * Return: the number of routes (which may exceed @cap), -EINVAL.
 */
NS_EXPORT int ns_route_list(struct ns_stack *s, struct ns_route *out, size_t cap);

/* ------------------------------------------------------------------ */
/* Sockets                                                             */
/* ------------------------------------------------------------------ */

/*
 * Socket numbers are the stack's own, not kernel fds. The semantics follow
 * Linux where lwIP allows: an AF_INET6 socket bound to :: also serves IPv4
 * peers, seen as ::ffff:a.b.c.d (unless IPV6_V6ONLY is set). Supported
 * options: SOL_SOCKET SO_REUSEADDR, SO_RCVBUF, SO_SNDBUF, SO_KEEPALIVE,
 * SO_ERROR (read-only, cleared on read), SO_TYPE, SO_ACCEPTCONN,
 * SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER (l_linger 0: close sends RST; other
 * values close gracefully in the background, never blocking close);
 * IPPROTO_TCP TCP_NODELAY, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT;
 * IPPROTO_IPV6 IPV6_V6ONLY. Others are -ENOPROTOOPT.
 */

/**
 * ns_socket() - create a socket
 * @s: the stack
 * @domain: AF_INET or AF_INET6
 * @type: SOCK_STREAM or SOCK_DGRAM, optionally | SOCK_NONBLOCK
 * @protocol: 0, IPPROTO_TCP or IPPROTO_UDP
 *
 * Return: the socket number (>= 0), -EAFNOSUPPORT, -EPROTONOSUPPORT,
 * -EINVAL, -EMFILE (table full), -ENOMEM.
 */
NS_EXPORT int ns_socket(struct ns_stack *s, int domain, int type, int protocol);

/**
 * ns_bind() - give a socket its local address
 * @s: the stack
 * @sock: the socket
 * @addr: a sockaddr_in or sockaddr_in6 of the socket's domain; port 0 picks
 *        an ephemeral port; [::] serves IPv4 too unless IPV6_V6ONLY
 * @len: its length
 *
 * Return: 0, -EBADF, -EINVAL (already bound, short @len), -EAFNOSUPPORT,
 * -EADDRNOTAVAIL (not an address of this stack), -EADDRINUSE.
 */
NS_EXPORT int ns_bind(struct ns_stack *s, int sock, const struct sockaddr *addr, socklen_t len);

/**
 * ns_listen() - make a TCP socket accept connections
 * @s: the stack
 * @sock: the socket; bound to an ephemeral port first if unbound
 * @backlog: connections queued but not yet accepted, clamped to 1..255;
 *           a SYN beyond it is dropped
 *
 * Calling it again on a listener changes the backlog.
 *
 * Return: 0, -EBADF, -EOPNOTSUPP (UDP), -EINVAL (connected), -EADDRINUSE.
 */
NS_EXPORT int ns_listen(struct ns_stack *s, int sock, int backlog);

/**
 * ns_accept() - take a connection from a listener's queue
 * @s: the stack
 * @sock: a listening socket
 * @addr: receives the peer's address, or NULL
 * @len: in: room in @addr; out: its length. NULL when @addr is NULL
 * @flags: 0 or SOCK_NONBLOCK (for the new socket)
 *
 * Blocks until a connection is queued unless @sock is nonblocking.
 *
 * Return: the new socket, -EAGAIN, -EINVAL (not listening), -EBADF,
 * -ENOTSOCK, -EMFILE, -ECONNABORTED.
 */
NS_EXPORT int ns_accept(struct ns_stack *s, int sock, struct sockaddr *addr, socklen_t *len, int flags);

/**
 * ns_connect() - connect a socket
 * @s: the stack
 * @sock: the socket
 * @addr: the peer
 * @len: its length
 *
 * TCP: blocks until the handshake completes; a nonblocking socket returns
 * -EINPROGRESS and reports completion as POLLOUT, the result in SO_ERROR.
 * UDP: sets the default peer and filters what is received.
 *
 * Return: 0, -EINPROGRESS, -EALREADY, -EISCONN, -ECONNREFUSED, -ETIMEDOUT,
 * -ENETUNREACH, -EAFNOSUPPORT, -EINVAL, -EBADF.
 */
NS_EXPORT int ns_connect(struct ns_stack *s, int sock, const struct sockaddr *addr, socklen_t len);

/*
 * send/recv and their variants take the flags MSG_DONTWAIT, MSG_PEEK (recv),
 * MSG_NOSIGNAL (accepted, no signals are ever raised) and MSG_WAITALL (recv
 * on TCP). TCP send blocks until all of @len is queued (or the socket is
 * nonblocking, then a short count or -EAGAIN). recv returns 0 at end of
 * stream. A UDP datagram larger than the buffer is truncated.
 */

/**
 * ns_send() - send on a connected socket; ns_sendto() with no address
 * @s: the stack
 * @sock: the socket
 * @buf: the bytes; only read during the call
 * @len: how many
 * @flags: see above
 *
 * Return: bytes queued, -EAGAIN, -EPIPE (shut down or closed by the peer),
 * -ECONNRESET, -ENOTCONN, -EDESTADDRREQ (UDP), -EMSGSIZE (UDP), -EBADF,
 * -EINVAL.
 */
NS_EXPORT ssize_t ns_send(struct ns_stack *s, int sock, const void *buf, size_t len, int flags);

/**
 * ns_recv() - receive; ns_recvfrom() without the sender's address
 * @s: the stack
 * @sock: the socket
 * @buf: receives the bytes
 * @len: room in @buf
 * @flags: see above
 *
 * Return: bytes read, 0 at end of stream, -EAGAIN (nonblocking, or
 * SO_RCVTIMEO expired), -ECONNRESET, -ETIMEDOUT, -ENOTCONN, -EBADF, -EINVAL.
 */
NS_EXPORT ssize_t ns_recv(struct ns_stack *s, int sock, void *buf, size_t len, int flags);

/**
 * ns_sendto() - send, to @to on an unconnected UDP socket
 * @s: the stack
 * @sock: the socket
 * @buf: the bytes; only read during the call
 * @len: how many
 * @flags: see above
 * @to: the destination (UDP), or NULL for the connected peer
 * @tolen: its length
 *
 * Return: as ns_send(); a UDP datagram is sent whole or not at all.
 */
NS_EXPORT ssize_t ns_sendto(struct ns_stack *s, int sock, const void *buf, size_t len, int flags,
			    const struct sockaddr *to, socklen_t tolen);

/**
 * ns_recvfrom() - receive, with the sender's address
 * @s: the stack
 * @sock: the socket
 * @buf: receives the bytes
 * @len: room in @buf
 * @flags: see above; MSG_TRUNC returns a datagram's full length
 * @from: receives the sender's address, or NULL
 * @fromlen: in: room in @from; out: the address's full length
 *
 * Return: as ns_recv().
 */
NS_EXPORT ssize_t ns_recvfrom(struct ns_stack *s, int sock, void *buf, size_t len, int flags,
			      struct sockaddr *from, socklen_t *fromlen);

/**
 * ns_shutdown() - shut down one or both directions
 * @s: the stack
 * @sock: the socket
 * @how: SHUT_RD, SHUT_WR or SHUT_RDWR
 *
 * Return: 0, -ENOTCONN, -EINVAL, -EBADF.
 */
NS_EXPORT int ns_shutdown(struct ns_stack *s, int sock, int how);

/**
 * ns_close() - close a socket and free its number
 * @s: the stack
 * @sock: the socket
 *
 * Threads blocked on it return -EBADF. Unread data or SO_LINGER 0 aborts the
 * connection with RST, as Linux does; otherwise the close is graceful and
 * lwIP finishes it in the background.
 *
 * Return: 0, -EBADF.
 */
NS_EXPORT int ns_close(struct ns_stack *s, int sock);

/**
 * ns_getsockname() - the socket's local address
 * @s: the stack
 * @sock: the socket
 * @addr: receives it, truncated to *@len as getsockname(2) does
 * @len: in: room in @addr; out: the address's full length
 *
 * Return: 0, -EBADF, -EINVAL.
 */
NS_EXPORT int ns_getsockname(struct ns_stack *s, int sock, struct sockaddr *addr, socklen_t *len);

/**
 * ns_getpeername() - the connected peer's address
 * @s: the stack
 * @sock: the socket
 * @addr: receives it, truncated to *@len
 * @len: in: room in @addr; out: the address's full length
 *
 * Return: 0, -ENOTCONN, -EBADF, -EINVAL.
 */
NS_EXPORT int ns_getpeername(struct ns_stack *s, int sock, struct sockaddr *addr, socklen_t *len);

/**
 * ns_setsockopt() - set one of the options listed above
 * @s: the stack
 * @sock: the socket
 * @level: SOL_SOCKET, IPPROTO_TCP or IPPROTO_IPV6
 * @name: the option
 * @val: an int, or struct timeval / struct linger where the option takes one
 * @len: its size
 *
 * Return: 0, -ENOPROTOOPT, -EINVAL (short @len, bad value, IPV6_V6ONLY after
 * bind), -EDOM (bad timeval), -EBADF.
 */
NS_EXPORT int ns_setsockopt(struct ns_stack *s, int sock, int level, int name, const void *val, socklen_t len);

/**
 * ns_getsockopt() - read one of the options listed above
 * @s: the stack
 * @sock: the socket
 * @level: SOL_SOCKET, IPPROTO_TCP or IPPROTO_IPV6
 * @name: the option
 * @val: receives the value
 * @len: in: room in @val; out: the value's size
 *
 * Return: 0, -ENOPROTOOPT, -EINVAL, -EBADF.
 */
NS_EXPORT int ns_getsockopt(struct ns_stack *s, int sock, int level, int name, void *val, socklen_t *len);

/**
 * ns_set_nonblocking() - the socket's O_NONBLOCK
 * @s: the stack
 * @sock: the socket
 * @on: true for nonblocking
 *
 * Return: 0, -EBADF.
 */
NS_EXPORT int ns_set_nonblocking(struct ns_stack *s, int sock, bool on);

enum ns_socket_state {
	NS_SOCKET_UNBOUND,
	NS_SOCKET_BOUND,
	NS_SOCKET_LISTENING,
	NS_SOCKET_CONNECTING,
	NS_SOCKET_CONNECTED,
	NS_SOCKET_CLOSED,	/* reset, timed out, or both directions shut down */
};

struct ns_socket_info {
	int id;
	int family;		/* AF_INET, AF_INET6 */
	int type;		/* SOCK_STREAM, SOCK_DGRAM */
	enum ns_socket_state state;
	struct sockaddr_storage local;	/* family 0 when unbound */
	struct sockaddr_storage remote;	/* family 0 when not connected */
	int backlog;		/* listeners */
	size_t rx_queued;	/* bytes (TCP) or datagram bytes (UDP) waiting */
};

/**
 * ns_socket_list() - describe the open sockets, by increasing number
 * @s: the stack
 * @out: receives up to @cap entries (may be NULL when @cap is 0)
 * @cap: room in @out
 *
 * Return: the number of open sockets (which may exceed @cap), -EINVAL.
 */
NS_EXPORT int ns_socket_list(struct ns_stack *s, struct ns_socket_info *out, size_t cap);

/**
 * ns_poll() - poll(2) on stack sockets
 * @s: the stack
 * @fds: the sockets (fd = socket number; a negative fd is ignored)
 * @nfds: how many
 * @timeout_ms: -1 waits forever, 0 returns at once
 *
 * Events: POLLIN, POLLOUT, POLLRDHUP; reported: those plus POLLERR,
 * POLLHUP, and POLLNVAL for a socket number that is not open.
 *
 * Return: the number of entries with revents set, -EINVAL.
 */
NS_EXPORT int ns_poll(struct ns_stack *s, struct pollfd *fds, nfds_t nfds, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* NETSTACK_H */
