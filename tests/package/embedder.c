/* SPDX-License-Identifier: MIT */
/*
 * embedder.c - the smallest embedder of an installed libnetstack: it only
 * sees the installed header and links the installed library, so it proves
 * the package (header, libraries, pkg-config file, CMake config) is whole.
 * It creates a stack on a channel NIC, binds a UDP socket and exits 0.
 */
#include <errno.h>
#include <netstack.h>
#include <stdio.h>

int main(void)
{
	struct ns_stack *s;
	struct ns_endpoint *ep;
	struct ns_prefix p;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(7) };
	int nic, sock, rc;

	if (ns_stack_new(NULL, &s) || ns_endpoint_channel_new(&ep))
		return 1;
	nic = ns_nic_add(s, NULL, ep);
	if (nic < 0 || ns_prefix_parse("198.51.100.2/24", &p) || ns_addr_add(s, nic, &p))
		return 1;
	sock = ns_socket(s, AF_INET, SOCK_DGRAM, 0);
	rc = ns_bind(s, sock, (struct sockaddr *)&sin, sizeof(sin));
	/* Pulls the checkpoint code (protobuf-c, ISA-L) into a static link. */
	if (ns_stack_checkpoint(s, "", NULL) != -EINVAL)
		rc = -1;
	ns_stack_free(s);
	printf("embedder: socket %d bound: %d\n", sock, rc);
	return sock >= 0 && rc == 0 ? 0 : 1;
}
