/*
 * request.c - the blocking request/response calls: ListSources and Append.
 *
 * The calling thread encodes its request, posts it as a command and waits on c->cv; the runtime
 * thread sends it and fills in the answer under c->mu.  One request of each kind is outstanding
 * at a time (list_mu, append_mu serialise callers).  A caller that times out stops waiting; the
 * late answer is recognised by its request number (ListSources answers arrive in request order)
 * or batch id (Append) and dropped.
 *
 * A request whose connection is lost before its answer came fails with SL_EDISCONNECTED, also
 * while the runtime reconnects (client.c answers it in the caller's place); so does one made
 * during an outage.  They are not resent: an Append whose answer was lost may or may not have
 * been committed, and only the caller can tell whether sending it again is right.
 */
#include "compute/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define APPEND_CHUNK (1u << 20) /* update bytes per Append frame */

static void deadline_ts(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* With c->mu held: waits until *done, the connection dies, or the deadline. */
static int wait_answer(sl_client *c, const int *done, int timeout_ms)
{
	struct timespec ts;
	if (timeout_ms >= 0)
		deadline_ts(&ts, timeout_ms);
	while (!*done && !c->dead) {
		if (timeout_ms < 0)
			pthread_cond_wait(&c->cv, &c->mu);
		else if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
			break;
	}
	if (*done)
		return 0;
	if (c->dead) {
		sli_set_last_error("%s", c->dead_msg);
		return SL_EDISCONNECTED;
	}
	return SL_ETIMEDOUT;
}

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
	if ((rc = wait_answer(c, &c->list_done, timeout_ms)) == 0 && (rc = c->list_rc) == 0) {
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

/* The worker count of source, from the last ListSources (asked now if unknown).  0, or
 * SL_ENOSOURCE / a ListSources error (message set). */
static int source_workers(sl_client *c, uint64_t source, int timeout_ms, uint32_t *out)
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
	if (P > 1 && (rc = source_workers(c, source, timeout_ms, &W)) != 0)
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
	if ((rc = wait_answer(c, &c->append_done, timeout_ms)) == 0) {
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
