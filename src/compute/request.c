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
	pthread_mutex_unlock(&c->mu);
	sli_client_post(c, cmd);

	pthread_mutex_lock(&c->mu);
	if ((rc = wait_answer(c, &c->list_done, timeout_ms)) == 0 && (rc = c->list_rc) == 0) {
		*out = c->list_out;
		*n = c->list_n;
	} else if (c->list_done) {
		if (rc == SL_EDISCONNECTED)
			sli_set_last_error("the connection to storage was lost");
		sl_source_info_free(c->list_out, c->list_n);
	}
	c->list_out = NULL;
	c->list_n = 0;
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

int sl_client_append(sl_client *c, uint64_t source, const sl_update *ups, size_t n,
                     int timeout_ms, uint64_t *time_out)
{
	sli_cmd *cmd;
	int rc;
	if (c == NULL || (ups == NULL && n > 0))
		return SL_EARG;
	for (size_t i = 0; i < n; i++)
		if (ups[i].row.len > SL_ROW_MAX)
			return SL_ETOOBIG;
	if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
		return SL_ENOMEM;
	cmd->kind = SLI_CMD_APPEND;
	sli_buf_init(&cmd->frames);
	pthread_mutex_lock(&c->append_mu);
	cmd->seq = ++c->append_seq;
	if ((rc = encode_append(&cmd->frames, cmd->seq, source, ups, n)) != 0) {
		pthread_mutex_unlock(&c->append_mu);
		sli_cmd_free(cmd);
		return rc;
	}
	pthread_mutex_lock(&c->mu);
	if (c->dead) {
		sli_set_last_error("%s", c->dead_msg);
		pthread_mutex_unlock(&c->mu);
		pthread_mutex_unlock(&c->append_mu);
		sli_cmd_free(cmd);
		return SL_EDISCONNECTED;
	}
	c->append_wait = cmd->seq;
	c->append_done = 0;
	pthread_mutex_unlock(&c->mu);
	sli_client_post(c, cmd);

	pthread_mutex_lock(&c->mu);
	if ((rc = wait_answer(c, &c->append_done, timeout_ms)) == 0) {
		rc = c->append_rc;
		if (rc == 0 && time_out)
			*time_out = c->append_time;
		if (rc != 0)
			sli_set_last_error("%s", c->append_msg ? c->append_msg : sl_strerror(rc));
	}
	free(c->append_msg);
	c->append_msg = NULL;
	c->append_wait = 0;
	c->append_done = 0;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->append_mu);
	return rc;
}
