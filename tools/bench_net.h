/* SPDX-License-Identifier: MIT */
/*
 * bench_net.h - what the network scenarios of netstack-bench (stream, rr,
 * crr, udp, conns) share between their files: the sandboxes under test
 * (bench_net_env.c: namespaces, the processes that serve in them, cleanup),
 * the services each sandbox runs on one socket interface with a kernel and a
 * netstack implementation (bench_net_svc.c), the iperf3-protocol server on
 * netstack's public API (iperf3_ns.c), and the kernel-side load generators
 * (bench_net_load.c). bench_net.c drives them and reports.
 *
 * Every sandbox serves the same ports relative to its base: the iperf3
 * server at +0, TCP echo (rr, crr) at +1, the UDP sink at +2 and the
 * connection holder (conns) at +3. All load starts in one client namespace.
 */
#ifndef NETSTACK_BENCH_NET_H
#define NETSTACK_BENCH_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "netstack.h"

enum {
	SVC_IPERF = 0,
	SVC_ECHO = 1,
	SVC_UDP = 2,
	SVC_CONNS = 3,
	/* Extra listeners for the per-listener memory figure start here. */
	SVC_LISTENERS = 100,
};

/* The UDP sink's in-band control: every datagram starts with one of these. */
enum {
	UDP_DATA = 'D',
	UDP_RESET = 'S',	/* zero the count; answered with UDP_ACK */
	UDP_ACK = 'A',
	UDP_REPORT = 'E',	/* answered with UDP_COUNT + the u64 count */
	UDP_COUNT = 'R',
};

/* The socket calls a service needs, so one service body runs on the kernel
 * and on netstack. Every call returns a value or -errno. */
struct svc_ops {
	int (*socket)(void *ctx, int type);
	int (*bind_listen)(void *ctx, int sock, uint16_t port);
	int (*accept)(void *ctx, int sock);
	ssize_t (*recv)(void *ctx, int sock, void *buf, size_t len);
	ssize_t (*send)(void *ctx, int sock, const void *buf, size_t len);
	ssize_t (*recvfrom)(void *ctx, int sock, void *buf, size_t len,
			    struct sockaddr_in *from);
	ssize_t (*sendto)(void *ctx, int sock, const void *buf, size_t len,
			  const struct sockaddr_in *to);
	int (*close)(void *ctx, int sock);
};

extern const struct svc_ops svc_kernel_ops;
extern const struct svc_ops svc_netstack_ops;	/* ctx: struct ns_stack * */

/* bench_net_svc.c */
int svc_start_all(const struct svc_ops *ops, void *ctx, uint16_t base);
int svc_serve_commands(const struct svc_ops *ops, void *ctx, uint16_t base, int cmdfd, int replyfd);
int svc_netstack_main(const char *tap, const char *cidr, uint16_t base, int cmdfd, int replyfd);
int svc_kernel_main(uint16_t base, int cmdfd, int replyfd);

/* iperf3_ns.c */
int iperf3_ns_serve(struct ns_stack *s, uint16_t port);

/* bench_net_load.c: the client side, kernel sockets in the caller's netns. */
struct rr_result {
	double median_us, p99_us;
	unsigned long count;
};
int load_rr(const char *addr, uint16_t port, double seconds, unsigned long max, struct rr_result *r);
int load_crr(const char *addr, uint16_t port, double seconds, unsigned long max, double *per_sec);
int load_udp(const char *addr, uint16_t port, size_t size, double seconds, double *pps, double *loss);
int load_conns_open(const char *addr, uint16_t port, unsigned n, int *fds);
void load_conns_close(int *fds, unsigned n);

/* bench_net_env.c: the sandboxes. */
enum peer {
	PEER_KERNEL,
	PEER_NETSTACK,
	PEER_PASTA,
	PEER_SLIRP,
	PEER_COUNT,
};

struct sandbox {
	enum peer peer;
	const char *name;		/* "kernel", "netstack", "pasta", "slirp4netns" */
	char version[96];
	char addr[INET_ADDRSTRLEN];	/* where the client reaches its services */
	uint16_t base;			/* first service port */
	unsigned mtu;
	pid_t server;			/* svc_*_main child */
	pid_t iperf;			/* kernel iperf3 -s in the sandbox, or 0 */
	pid_t stack;			/* the user-space stack process (pasta, slirp, netstack) */
	int cmdfd, replyfd;		/* to and from the svc child */
};

int env_init(void);
void env_cleanup(void);
int env_sandbox_up(struct sandbox *sb, unsigned mtu);
void env_sandbox_down(struct sandbox *sb);
int env_sandbox_command(struct sandbox *sb, const char *cmd, char *reply, size_t cap);
int env_run_iperf3(struct sandbox *sb, double seconds, bool reverse, double *gbps,
		   double *cpu_per_gb);
int env_pin(pid_t pid, int cpu);
long env_rss_kib(pid_t pid);
double env_cpu_seconds(pid_t pid);
void env_versions(struct sandbox *sbs);

#endif /* NETSTACK_BENCH_NET_H */
