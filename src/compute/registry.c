/*
 * registry.c - the triple registry: the subscriptions live for their workers, by (dataflow,
 * source, worker), so a second subscription of the same triple fails with SL_EDUPLICATE.
 *
 * Registering and posting the Subscribe command happen under one hold of c->mu, after the check
 * that the client is not dead.  Any thread (c->mu); this file owns c->tbuckets, tcap, tcount,
 * next_sub_id and each subscription's tnext and registered.
 */
#include "compute/runtime.h"

#include <stdlib.h>

static size_t triple_slot(const sl_client *c, uint64_t dataflow, uint64_t source, uint32_t worker)
{
	uint64_t h = dataflow * 0x9E3779B97F4A7C15ull;
	h ^= (source + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
	h ^= ((uint64_t)worker + 1) * 0x165667B19E3779F9ull;
	h ^= h >> 29;
	return (size_t)h & (c->tcap - 1);
}

static int triple_grow(sl_client *c)
{
	size_t ncap = c->tcap ? c->tcap * 2 : 64, ocap = c->tcap;
	sli_csub **nb = calloc(ncap, sizeof(*nb)), **ob = c->tbuckets;
	if (nb == NULL)
		return SL_ENOMEM;
	c->tbuckets = nb;
	c->tcap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		for (sli_csub *e = ob[i], *nx; e; e = nx) {
			nx = e->tnext;
			size_t k = triple_slot(c, e->dataflow, e->source, e->worker);
			e->tnext = nb[k];
			nb[k] = e;
		}
	}
	free(ob);
	return 0;
}

int sli_client_subscribe(sl_client *c, sli_csub *s)
{
	sli_cmd *cmd = calloc(1, sizeof(*cmd));
	int rc = 0;
	if (cmd == NULL)
		return SL_ENOMEM;
	pthread_mutex_lock(&c->mu);
	if (c->dead) {
		rc = SL_EDISCONNECTED;
		goto out;
	}
	if (c->tcount + 1 > c->tcap && (rc = triple_grow(c)) != 0)
		goto out;
	size_t k = triple_slot(c, s->dataflow, s->source, s->worker);
	for (sli_csub *e = c->tbuckets[k]; e; e = e->tnext) {
		if (e->dataflow == s->dataflow && e->source == s->source && e->worker == s->worker) {
			rc = SL_EDUPLICATE;
			goto out;
		}
	}
	s->tnext = c->tbuckets[k];
	c->tbuckets[k] = s;
	c->tcount++;
	s->registered = 1;
	s->id = ++c->next_sub_id;
	cmd->kind = SLI_CMD_SUB;
	cmd->sub = s;
	atomic_fetch_add(&s->refs, 1);
	/* posted under the same lock: a client dying now runs it with the commands it takes */
	sli_cmds_append_locked(c, cmd);
	cmd = NULL;
out:
	pthread_mutex_unlock(&c->mu);
	free(cmd);
	if (rc == 0)
		sli_loop_wake(c->loop);
	return rc;
}

void sli_client_unregister(sl_client *c, sli_csub *s)
{
	pthread_mutex_lock(&c->mu);
	if (s->registered) {
		size_t k = triple_slot(c, s->dataflow, s->source, s->worker);
		for (sli_csub **pp = &c->tbuckets[k]; *pp; pp = &(*pp)->tnext) {
			if (*pp == s) {
				*pp = s->tnext;
				c->tcount--;
				break;
			}
		}
		s->registered = 0;
	}
	pthread_mutex_unlock(&c->mu);
}
