/* SPDX-License-Identifier: MIT */
/*
 * state.c - freeing a struct ns_state (state.h): the one function both
 * sides need, netstack/ when a save fails and checkpoint/ for what it read,
 * kept here so that dependencies still point one way.
 */
#include <stdlib.h>
#include <string.h>

#include "state.h"

/**
 * ns_state_release() - free the arrays of a state, not the state itself
 * @st: the state; zeroed afterwards. A zeroed state is fine, NULL too.
 */
void ns_state_release(struct ns_state *st)
{
	if (!st)
		return;
	free(st->nics);
	free(st->routes);
	free(st->socks);
	memset(st, 0, sizeof(*st));
}
