/*
 * sources.c - ListSources: asked of every process of the cluster, the answers merged into one
 * list (each worker's upper from the process that owns it); and the routing table of Append
 * rows (each source's worker count) learnt from it.
 *
 * The calling thread posts the request and waits on c->cv (one at a time: list_mu); the runtime
 * thread sends it on every connection and files each answer, or its failure, under c->mu.
 * Answers on one connection arrive in request order (list_head is that FIFO); a caller that
 * timed out stops waiting, and a late answer is recognised by its request number and dropped.
 * A connection lost before its answer came fails the request with SL_EDISCONNECTED (also during
 * an outage: it is not resent).  This file owns c->list_* and c->wsrc/wcount/wn, and each
 * connection's list_head/list_tail.
 */
#include "compute/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the caller's side ---- */

/* Merges the answers of every process into parts[home]'s array: the same sources everywhere,
 * the upper of worker w from process w mod P.  0, or SL_ECLUSTER (message set). */
static int merge_sources(sl_client *c, sl_source_info **parts, size_t *nparts)
{
	uint32_t P = c->nconns;
	sl_source_info *m = parts[0];
	size_t n = nparts[0];
	for (uint32_t p = 1; p < P; p++) {
		if (nparts[p] != n) {
			sli_set_last_error("storage processes 0 and %u list different sources (%zu and "
			                   "%zu)", p, n, nparts[p]);
			return SL_ECLUSTER;
		}
		for (size_t i = 0; i < n; i++) {
			const sl_source_info *a = &m[i], *b = &parts[p][i];
			if (a->id != b->id || a->workers != b->workers || strcmp(a->name, b->name) != 0 ||
			    strcmp(a->kind, b->kind) != 0) {
				sli_set_last_error("storage processes 0 and %u disagree about source %zu "
				                   "(%s id %llu, %u workers vs %s id %llu, %u workers)", p,
				                   i, a->name, (unsigned long long)a->id, a->workers, b->name,
				                   (unsigned long long)b->id, b->workers);
				return SL_ECLUSTER;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		sl_source_info *d = &m[i];
		d->upper = SL_TIME_CLOSED;
		for (uint32_t w = 0; w < d->workers; w++) {
			d->uppers[w] = parts[w % P][i].uppers[w];
			if (d->uppers[w] < d->upper)
				d->upper = d->uppers[w];
		}
	}
	return 0;
}

/* Remembers each source's worker count (for routing Append rows).  c->mu held. */
static void remember_workers(sl_client *c, const sl_source_info *v, size_t n)
{
	uint64_t *ns = realloc(c->wsrc, (n ? n : 1) * sizeof(*ns));
	if (ns == NULL)
		return;
	c->wsrc = ns;
	uint32_t *nc = realloc(c->wcount, (n ? n : 1) * sizeof(*nc));
	if (nc == NULL)
		return;
	c->wcount = nc;
	for (size_t i = 0; i < n; i++) {
		c->wsrc[i] = v[i].id;
		c->wcount[i] = v[i].workers;
	}
	c->wn = n;
}

int sl_client_list_sources(sl_client *c, int timeout_ms, sl_source_info **out, size_t *n)
{
	sli_cmd *cmd;
	int rc;
	if (c == NULL || out == NULL || n == NULL)
		return SL_EARG;
	if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
		return SL_ENOMEM;
	cmd->kind = SLI_CMD_LIST;
	pthread_mutex_lock(&c->list_mu);
	pthread_mutex_lock(&c->mu);
	if (c->dead) {
		sli_set_last_error("%s", c->dead_msg);
		pthread_mutex_unlock(&c->mu);
		pthread_mutex_unlock(&c->list_mu);
		free(cmd);
		return SL_EDISCONNECTED;
	}
	cmd->seq = ++c->list_seq;
	c->list_wait = cmd->seq;
	c->list_done = 0;
	c->list_rc = 0;
	c->list_left = c->nconns;
	c->list_msg[0] = '\0';
	pthread_mutex_unlock(&c->mu);
	sli_client_post(c, cmd);

	pthread_mutex_lock(&c->mu);
	if ((rc = sli_wait_answer(c, &c->list_done, timeout_ms)) == 0 && (rc = c->list_rc) == 0) {
		if ((rc = merge_sources(c, c->list_parts, c->list_nparts)) == 0) {
			*out = c->list_parts[0];
			*n = c->list_nparts[0];
			remember_workers(c, *out, *n);
			c->list_parts[0] = NULL;
			c->list_nparts[0] = 0;
		}
	} else if (c->list_done) {
		if (c->nconns > 1 && c->list_msg[0])
			sli_set_last_error("%s", c->list_msg);
		else if (rc == SL_EDISCONNECTED)
			sli_set_last_error("the connection to storage was lost");
	}
	for (uint32_t i = 0; i < c->nconns; i++) {
		sl_source_info_free(c->list_parts[i], c->list_nparts[i]);
		c->list_parts[i] = NULL;
		c->list_nparts[i] = 0;
	}
	c->list_wait = 0;
	c->list_done = 0;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->list_mu);
	return rc;
}

void sl_source_info_free(sl_source_info *infos, size_t n)
{
	if (infos == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(infos[i].name);
		free(infos[i].kind);
		free(infos[i].uppers);
	}
	free(infos);
}

int sli_source_workers(sl_client *c, uint64_t source, int timeout_ms, uint32_t *out)
{
	for (int pass = 0; pass < 2; pass++) {
		int found = 0;
		pthread_mutex_lock(&c->mu);
		for (size_t i = 0; i < c->wn; i++) {
			if (c->wsrc[i] == source) {
				*out = c->wcount[i];
				found = 1;
				break;
			}
		}
		pthread_mutex_unlock(&c->mu);
		if (found)
			return 0;
		if (pass == 1)
			break;
		sl_source_info *v;
		size_t n;
		int rc = sl_client_list_sources(c, timeout_ms, &v, &n);
		if (rc != 0)
			return rc;
		sl_source_info_free(v, n);
	}
	sli_set_last_error("no source with id %llu", (unsigned long long)source);
	return SL_ENOSOURCE;
}

/* ---- the runtime thread's side ---- */

/* Fails the ListSources a caller waits for, if it is seq: process k could not answer it. */
static void fail_list(sli_conn *k, uint64_t seq, int rc)
{
	sl_client *c = k->c;
	pthread_mutex_lock(&c->mu);
	if (c->list_wait == seq && !c->list_done) {
		c->list_rc = rc;
		snprintf(c->list_msg, sizeof(c->list_msg),
		         "storage process %u (%s) is not connected: %s", k->index, k->addr,
		         sl_strerror(rc));
		c->list_done = 1;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

void sli_send_list(sl_client *c, const sli_cmd *cmd)
{
	sli_frame f;
	memset(&f, 0, sizeof(f));
	/* asked of every process; each keeps a copy of the command until its answer */
	for (uint32_t i = 0; i < c->nconns; i++) {
		sli_conn *kk = &c->conns[i];
		sli_cmd *one;
		if (!kk->connected) {
			fail_list(kk, cmd->seq, SL_EDISCONNECTED);
			continue;
		}
		if ((one = calloc(1, sizeof(*one))) == NULL) {
			fail_list(kk, cmd->seq, SL_ENOMEM);
			continue;
		}
		one->kind = SLI_CMD_LIST;
		one->seq = cmd->seq;
		one->proc = i;
		f.type = SLI_LIST_SOURCES;
		sli_send_frame(kk, &f);
		/* answers come in request order */
		if (kk->list_tail)
			kk->list_tail->next = one;
		else
			kk->list_head = one;
		kk->list_tail = one;
	}
}

static int build_sources(const sli_sources *src, sl_source_info **out, size_t *n)
{
	sl_source_info *v = calloc(src->count ? src->count : 1, sizeof(*v));
	sl_bytes rest = src->entries;
	sli_source_entry e;
	size_t i = 0;
	if (v == NULL)
		return SL_ENOMEM;
	while (i < src->count && sli_sources_next(&rest, &e) == 1) {
		sl_source_info *d = &v[i++];
		d->id = e.id;
		d->workers = e.workers;
		d->name = strndup((const char *)e.name.ptr, e.name.len);
		d->kind = strndup((const char *)e.kind.ptr, e.kind.len);
		d->uppers = calloc(e.workers ? e.workers : 1, sizeof(uint64_t));
		if (d->name == NULL || d->kind == NULL || d->uppers == NULL) {
			sl_source_info_free(v, i);
			return SL_ENOMEM;
		}
		d->upper = SL_TIME_CLOSED;
		for (uint32_t w = 0; w < e.workers; w++) {
			d->uppers[w] = sli_get_u64(e.uppers.ptr + 8 * (size_t)w);
			if (d->uppers[w] < d->upper)
				d->upper = d->uppers[w];
		}
	}
	*out = v;
	*n = i;
	return 0;
}

void sli_on_sources(sli_conn *k, const sli_sources *src)
{
	sl_client *c = k->c;
	sli_cmd *cmd = k->list_head;
	sl_source_info *v = NULL;
	size_t n = 0;
	if (cmd == NULL)
		return; /* unsolicited: ignore */
	k->list_head = cmd->next;
	if (k->list_head == NULL)
		k->list_tail = NULL;
	int rc = build_sources(src, &v, &n);
	pthread_mutex_lock(&c->mu);
	if (c->list_wait == cmd->seq && !c->list_done) {
		if (rc != 0) {
			c->list_rc = rc;
			snprintf(c->list_msg, sizeof(c->list_msg), "%s", sl_strerror(rc));
			c->list_done = 1;
		} else if (c->list_parts[k->index] == NULL) {
			c->list_parts[k->index] = v;
			c->list_nparts[k->index] = n;
			v = NULL;
			if (--c->list_left == 0)
				c->list_done = 1;
		}
		if (c->list_done)
			pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	sl_source_info_free(v, n);
	sli_cmd_free(cmd);
}

void sli_fail_lists(sli_conn *k)
{
	for (sli_cmd *cmd = k->list_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		fail_list(k, cmd->seq, SL_EDISCONNECTED);
		sli_cmd_free(cmd);
	}
	k->list_head = k->list_tail = NULL;
}
