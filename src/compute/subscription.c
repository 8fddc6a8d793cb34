/*
 * subscription.c - the runtime thread's side of a subscription: the handle it holds on its
 * connection, the parked list of those without one, sending its Subscribe (first, or again from
 * its resume point), and its release.
 *
 * Runtime thread only.  This file owns each connection's handle table (slots, freeh) and parked
 * list, and each subscription's runtime fields (rstate, handle, gen, pnext/pprev); failover.c
 * takes every handle back at once when a connection is lost.  See runtime.h for the lifetime
 * rules (the runtime's reference ends with the RELEASE item).
 */
#include "compute/conn.h"

#include <stdlib.h>
#include <string.h>

sli_qitem *sli_msg_item(int kind, sli_csub *s, int code, const char *msg, size_t len)
{
	sli_qitem *it = sli_qitem_new(kind, s, len);
	if (it == NULL)
		return NULL;
	memcpy(it->data, msg, len);
	it->code = code;
	return it;
}

static int handle_alloc(sli_conn *k, uint32_t *h)
{
	if (k->nfree > 0) {
		*h = k->freeh[--k->nfree];
		return 0;
	}
	uint32_t n = k->nslots ? k->nslots * 2 : 256;
	sli_csub **ns = realloc(k->slots, n * sizeof(*ns));
	if (ns == NULL)
		return SL_ENOMEM;
	k->slots = ns;
	uint32_t *nf = realloc(k->freeh, n * sizeof(*nf));
	if (nf == NULL)
		return SL_ENOMEM;
	k->freeh = nf;
	/* push the new handles so that the lowest comes out first */
	for (uint32_t i = n; i > k->nslots; i--) {
		k->slots[i - 1] = NULL;
		k->freeh[k->nfree++] = i - 1;
	}
	k->nslots = n;
	*h = k->freeh[--k->nfree];
	return 0;
}

void sli_park(sli_conn *k, sli_csub *s, int rstate)
{
	s->rstate = rstate;
	s->pprev = NULL;
	s->pnext = k->parked;
	if (k->parked)
		k->parked->pprev = s;
	k->parked = s;
}

static void unpark(sli_conn *k, sli_csub *s)
{
	if (s->pprev)
		s->pprev->pnext = s->pnext;
	else
		k->parked = s->pnext;
	if (s->pnext)
		s->pnext->pprev = s->pprev;
	s->pnext = s->pprev = NULL;
}

void sli_release(sl_client *c, sli_csub *s)
{
	sli_conn *k = &c->conns[s->proc];
	if (sli_is_parked(s))
		unpark(k, s);
	else if (s->rstate != SLI_R_NEW && s->handle < k->nslots && k->slots[s->handle] == s) {
		k->slots[s->handle] = NULL;
		k->freeh[k->nfree++] = s->handle;
	}
	s->rstate = SLI_R_RELEASED;
	sli_qitem *it = sli_qitem_new(SLI_QI_RELEASE, s, 0);
	if (it == NULL)
		return; /* leak s rather than free what queued items still point to */
	sli_queue_push(s->q, it);
}

/* Sends s's Subscribe on the current connection: from its `from` the first time, from its resume
 * point after a reconnect.  A subscription whose frontier closed needs nothing more and is parked
 * as DONE.  0, or SL_ENOMEM (s is then still the caller's to end). */
int sli_subscribe_wire(sli_conn *k, sli_csub *s)
{
	sl_client *c = k->c;
	uint64_t from = s->from;
	uint32_t h;
	if (s->acked) {
		uint64_t a = sli_replay_frontier(&s->rp[SL_OK]), b = sli_replay_frontier(&s->rp[SL_ERR]);
		uint64_t f = a < b ? a : b;
		if (f == SL_TIME_CLOSED) {
			sli_park(k, s, SLI_R_DONE);
			return 0;
		}
		/* never before the original `from`: storage would send times the worker never had */
		if (f > from)
			from = f;
	}
	if (handle_alloc(k, &h) != 0)
		return SL_ENOMEM;
	if (s->acked) {
		sli_replay_rewind(&s->rp[SL_OK]);
		sli_replay_rewind(&s->rp[SL_ERR]);
	}
	k->slots[h] = s;
	s->handle = h;
	s->gen++;
	s->rstate = SLI_R_SUBSCRIBING;
	sli_frame f;
	memset(&f, 0, sizeof(f));
	f.type = SLI_SUBSCRIBE;
	f.u.subscribe = (sli_subscribe){.handle = h, .dataflow = s->dataflow, .source = s->source,
	                                .worker = s->worker, .from = from, .credit = c->cfg.window};
	sli_send_frame(k, &f);
	return 0;
}
