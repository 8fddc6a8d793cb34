/*
 * ingest.c - Append: a batch of rows split by the process that owns each row's worker (the
 * ingest routing hash of the protocol), one part per process, and the answers merged.
 *
 * The calling thread encodes each part's frames and posts them (one batch at a time:
 * append_mu), then waits on c->cv; the runtime thread copies each part into its connection's
 * output and files each answer by batch id (a late one, for a batch the caller stopped waiting
 * for, is dropped).  A part whose connection is lost before its answer came fails with
 * SL_EDISCONNECTED, also while the runtime reconnects: it is not resent, since it may or may
 * not have been committed and only the caller can tell whether sending it again is right.
 * Storage answers a connection's batches in order, so each connection keeps the parts it sent
 * in a FIFO (k->pend) and an answer goes to the oldest: a producer's (producer.c) or this
 * file's caller.  This file owns c->append_* and each connection's FIFO.
 */
#include "compute/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPEND_CHUNK (1u << 20) /* update bytes per Append frame */

/* ---- the caller's side ---- */


/* Encodes ups as Append frames of at most APPEND_CHUNK update bytes each; the last is marked. */
static int encode_append(sli_buf *b, uint64_t batch, uint64_t source, const sl_update *ups,
                         size_t n)
{
	size_t i = 0;
	do {
		size_t j = i, bytes = 0;
		while (j < n && (j == i || bytes + SLI_UPDATE_HDR + ups[j].row.len <= APPEND_CHUNK))
			bytes += SLI_UPDATE_HDR + ups[j++].row.len;
		ssize_t off = sli_append_begin(b, batch, source, j == n ? SLI_APPEND_LAST : 0);
		if (off < 0)
			return (int)off;
		for (size_t k = i; k < j; k++)
			if (sli_put_update(b, ups[k].diff, ups[k].row) != 0)
				return SL_ENOMEM;
		sli_append_end(b, (size_t)off, (uint32_t)(j - i));
		i = j;
	} while (i < n);
	return 0;
}

int sl_client_append(sl_client *c, uint64_t source, const sl_update *ups, size_t n,
                     int timeout_ms, uint64_t *time_out)
{
	uint32_t P, W = 1, nparts = 0;
	sli_cmd **cmds = NULL;
	sl_update *sorted = NULL;
	size_t *counts = NULL;
	int rc;
	if (c == NULL || (ups == NULL && n > 0))
		return SL_EARG;
	for (size_t i = 0; i < n; i++)
		if (ups[i].row.len > SL_ROW_MAX)
			return SL_ETOOBIG;
	P = c->nconns;
	if (P > 1 && (rc = sli_source_workers(c, source, timeout_ms, &W)) != 0)
		return rc;
	cmds = calloc(P, sizeof(*cmds));
	counts = calloc(P + 1, sizeof(*counts));
	if (cmds == NULL || counts == NULL) {
		rc = SL_ENOMEM;
		goto out_free;
	}
	if (P > 1) {
		/* the rows of each process together, in batch order */
		if ((sorted = malloc((n ? n : 1) * sizeof(*sorted))) == NULL) {
			rc = SL_ENOMEM;
			goto out_free;
		}
		for (size_t i = 0; i < n; i++)
			counts[sl_ingest_route(ups[i].row, W) % P + 1]++;
		for (uint32_t p = 0; p < P; p++)
			counts[p + 1] += counts[p];
		size_t *at = calloc(P, sizeof(*at));
		if (at == NULL) {
			rc = SL_ENOMEM;
			goto out_free;
		}
		memcpy(at, counts, P * sizeof(*at));
		for (size_t i = 0; i < n; i++)
			sorted[at[sl_ingest_route(ups[i].row, W) % P]++] = ups[i];
		free(at);
	} else {
		counts[1] = n;
	}
	pthread_mutex_lock(&c->append_mu);
	uint64_t batch = ++c->append_seq;
	for (uint32_t p = 0; p < P; p++) {
		size_t from = counts[p], cnt = counts[p + 1] - counts[p];
		/* an empty batch still gets a time: it goes to the first process */
		if (cnt == 0 && !(n == 0 && p == 0))
			continue;
		if ((cmds[p] = calloc(1, sizeof(*cmds[p]))) == NULL) {
			rc = SL_ENOMEM;
			goto out_unlock;
		}
		cmds[p]->kind = SLI_CMD_APPEND;
		cmds[p]->seq = batch;
		cmds[p]->proc = p;
		sli_buf_init(&cmds[p]->frames);
		if ((rc = encode_append(&cmds[p]->frames, batch, source, (P > 1 ? sorted : ups) + from,
		                        cnt)) != 0)
			goto out_unlock;
		nparts++;
	}
	pthread_mutex_lock(&c->mu);
	if (c->dead) {
		sli_set_last_error("%s", c->dead_msg);
		pthread_mutex_unlock(&c->mu);
		rc = SL_EDISCONNECTED;
		goto out_unlock;
	}
	c->append_wait = batch;
	c->append_done = 0;
	c->append_left = nparts;
	for (uint32_t p = 0; p < P; p++) {
		c->append_state[p] = cmds[p] ? SLI_PART_PENDING : SLI_PART_NONE;
		c->append_rcs[p] = 0;
		c->append_times[p] = 0;
		free(c->append_msgs[p]);
		c->append_msgs[p] = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	for (uint32_t p = 0; p < P; p++) {
		if (cmds[p])
			sli_client_post(c, cmds[p]);
		cmds[p] = NULL;
	}

	pthread_mutex_lock(&c->mu);
	if ((rc = sli_wait_answer(c, &c->append_done, timeout_ms)) == 0) {
		uint64_t tmax = 0;
		int first_rc = 0;
		uint32_t first_p = 0, ok = 0;
		char okl[256] = "";
		for (uint32_t p = 0; p < P; p++) {
			if (c->append_state[p] == SLI_PART_OK) {
				if (c->append_times[p] > tmax)
					tmax = c->append_times[p];
				size_t l = strlen(okl);
				snprintf(okl + l, sizeof(okl) - l, "%s%u", ok ? ", " : "", p);
				ok++;
			} else if (c->append_state[p] == SLI_PART_FAILED && first_rc == 0) {
				first_rc = c->append_rcs[p];
				first_p = p;
			}
		}
		const char *m = first_rc ? (c->append_msgs[first_p] ? c->append_msgs[first_p]
		                                                     : sl_strerror(first_rc))
		                         : "";
		if (first_rc == 0) {
			if (time_out)
				*time_out = tmax;
		} else if (P == 1) {
			rc = first_rc;
			sli_set_last_error("%s", m);
		} else if (ok == 0) {
			rc = first_rc;
			sli_set_last_error("storage process %u: %s (no process committed its part)",
			                   first_p, m);
		} else {
			rc = SL_EREJECTED;
			sli_set_last_error("storage process %u: %s; the parts of processes %s were "
			                   "committed", first_p, m, okl);
		}
	}
	c->append_wait = 0;
	c->append_done = 0;
	pthread_mutex_unlock(&c->mu);
out_unlock:
	pthread_mutex_unlock(&c->append_mu);
out_free:
	if (cmds)
		for (uint32_t p = 0; p < P; p++)
			sli_cmd_free(cmds[p]);
	free(cmds);
	free(counts);
	free(sorted);
	return rc;
}

/* ---- the runtime thread's side ---- */

static const char append_lost_msg[] = "the connection to storage was lost before the batch was "
                                      "answered: it may or may not have been committed";

/* The answer to one part of sl_client_append's batch (a late one, for a batch the caller
 * stopped waiting for, is dropped). */
static void client_answer(sli_conn *k, uint64_t batch, int rc, uint64_t time, sl_bytes msg)
{
	sl_client *c = k->c;
	uint32_t i = k->index;
	pthread_mutex_lock(&c->mu);
	if (c->append_wait == batch && !c->append_done &&
	    c->append_state[i] == SLI_PART_PENDING) {
		c->append_state[i] = rc ? SLI_PART_FAILED : SLI_PART_OK;
		c->append_rcs[i] = rc;
		c->append_times[i] = time;
		free(c->append_msgs[i]);
		c->append_msgs[i] = rc ? strndup(msg.ptr ? (const char *)msg.ptr : "", msg.len) : NULL;
		if (--c->append_left == 0) {
			c->append_done = 1;
			pthread_cond_broadcast(&c->cv);
		}
	}
	pthread_mutex_unlock(&c->mu);
}

static void answer(sli_conn *k, sl_producer *p, uint64_t batch, int rc, uint64_t time,
                   sl_bytes msg)
{
	if (p != NULL)
		sli_producer_answer(p, k->index, batch, rc, time, msg);
	else
		client_answer(k, batch, rc, time, msg);
}

/* Files a part just sent at the tail of k's FIFO.  0 or SL_ENOMEM. */
static int pend_push(sli_conn *k, uint64_t batch, sl_producer *p)
{
	if (k->pend_len == k->pend_cap) {
		size_t cap = k->pend_cap ? k->pend_cap * 2 : 16;
		sli_pending_append *n = malloc(cap * sizeof(*n));
		if (n == NULL)
			return SL_ENOMEM;
		for (size_t i = 0; i < k->pend_len; i++)
			n[i] = k->pend[(k->pend_head + i) % k->pend_cap];
		free(k->pend);
		k->pend = n;
		k->pend_cap = cap;
		k->pend_head = 0;
	}
	k->pend[(k->pend_head + k->pend_len++) % k->pend_cap] =
		(sli_pending_append){.batch = batch, .producer = p};
	return 0;
}

int sli_send_append(sli_conn *k, sli_cmd *cmd)
{
	sl_producer *p = cmd->producer;
	cmd->producer = NULL; /* its reference goes to the answer */
	if (k->connected) {
		if (pend_push(k, cmd->seq, p) != 0) {
			answer(k, p, cmd->seq, SL_ENOMEM, 0,
			       (sl_bytes){(const uint8_t *)"out of memory", 13});
			return 0;
		}
		sli_queue_append(k, cmd);
		return 1;
	}
	/* never sent: certainly not committed */
	answer(k, p, cmd->seq, SL_EDISCONNECTED, 0,
	       (sl_bytes){(const uint8_t *)"not connected to storage", 24});
	return 0;
}

void sli_on_append_answer(sli_conn *k, uint64_t batch, int rc, uint64_t time, sl_bytes msg)
{
	if (k->pend_len == 0 || k->pend[k->pend_head].batch != batch) {
		sli_conn_lost(k, SL_EPROTO, "storage answered batch %llu, which is not the oldest "
		              "batch sent on this connection", (unsigned long long)batch);
		return;
	}
	sl_producer *p = k->pend[k->pend_head].producer;
	k->pend_head = (k->pend_head + 1) % k->pend_cap;
	k->pend_len--;
	answer(k, p, batch, rc, time, msg);
}

void sli_fail_append(sli_conn *k)
{
	while (k->pend_len > 0) {
		sli_pending_append e = k->pend[k->pend_head];
		k->pend_head = (k->pend_head + 1) % k->pend_cap;
		k->pend_len--;
		answer(k, e.producer, e.batch, SL_EDISCONNECTED, 0,
		       (sl_bytes){(const uint8_t *)append_lost_msg, sizeof(append_lost_msg) - 1});
	}
}
