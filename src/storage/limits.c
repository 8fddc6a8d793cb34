/*
 * limits.c - the limits that keep one misbehaving or hostile client from costing the storage
 * process more than its share: the configuration's defaults and bounds, the per-connection
 * Subscribe/Unsubscribe token bucket, and the refusal of a connection over --max-connections.
 * Runs on the network thread (sli_limits_check: in sl_storage_open).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "storage/storage_int.h"

int sli_limits_check(sl_storage_config *cfg, const sl_storage_config *def)
{
	if (cfg->max_connections == 0)
		cfg->max_connections = def->max_connections;
	if (cfg->max_subscriptions == 0)
		cfg->max_subscriptions = def->max_subscriptions;
	if (cfg->subscribe_rate == 0)
		cfg->subscribe_rate = def->subscribe_rate;
	if (cfg->subscribe_burst == 0)
		cfg->subscribe_burst = cfg->max_subscriptions;
	if (cfg->handshake_timeout_ms == 0)
		cfg->handshake_timeout_ms = def->handshake_timeout_ms;
	if (cfg->max_output == 0) {
		cfg->max_output = def->max_output;
		if (cfg->max_output < 4 * cfg->out_high_water + cfg->max_frame)
			cfg->max_output = 4 * cfg->out_high_water + cfg->max_frame; /* a big high-water mark */
	}
	if (cfg->max_batch_rows == 0)
		cfg->max_batch_rows = def->max_batch_rows;
	if (cfg->max_row == 0)
		cfg->max_row = def->max_row;
	if (cfg->max_row > SL_ROW_MAX)
		return SL_EARG;
	/* Below this a well-behaved connection (a big reply on top of a backed-up stream) could be
	 * cut off: the reader stops at 4 * out_high_water, plus one reply of at most max_frame. */
	if (cfg->max_output < 4 * cfg->out_high_water + cfg->max_frame)
		return SL_EARG;
	return 0;
}

/* The bucket counts thousandths of a request, so a rate of 1/s refills by 1 per ms. */
void sli_rate_init(struct sli_rate *r, uint32_t burst, uint64_t now_ms)
{
	r->milli = (uint64_t)burst * 1000u;
	r->last_ms = now_ms;
}

int sli_rate_take(struct sli_rate *r, uint32_t rate, uint32_t burst, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)burst * 1000u;
	if (now_ms > r->last_ms) {
		uint64_t add = (now_ms - r->last_ms) * (uint64_t)rate;
		r->milli = add >= cap - r->milli ? cap : r->milli + add;
		r->last_ms = now_ms;
	}
	if (r->milli < 1000u)
		return -1;
	r->milli -= 1000u;
	return 0;
}

void sli_limits_refuse(sl_storage *st, int fd)
{
	char msg[96];
	sli_buf b;
	sli_frame f = {.type = SLI_ERROR};
	int n = snprintf(msg, sizeof(msg), "too many connections (at most %u)", st->cfg.max_connections);

	f.u.error.code = SL_ELIMIT;
	f.u.error.fatal = 1;
	f.u.error.message = (sl_bytes){(const uint8_t *)msg, (size_t)n};
	/* A fresh socket's send buffer is empty: a frame this small goes out whole (if not, the
	 * peer just sees the close). */
	sli_buf_init(&b);
	if (sli_frame_encode(&b, &f) == 0) {
		ssize_t w = send(fd, b.ptr, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)w;
	}
	sli_buf_fini(&b);
	close(fd);
	st->refused++;
	if (st->cfg.warn != NULL && (st->refused & (st->refused - 1)) == 0) {
		/* Logged at the 1st, 2nd, 4th, 8th... refusal: a flood cannot flood the log too. */
		snprintf(msg, sizeof(msg), "refused a connection: %u open (--max-connections); %llu refused so far",
		         st->cfg.max_connections, (unsigned long long)st->refused);
		st->cfg.warn(st->cfg.warn_arg, msg);
	}
}
