/*
 * store.c - the storage runtime every benchmark measures against (opened, filled with rows,
 * started, closed) and the compute client that connects to it.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* ------------------------------------------------------------------------------------------ */
/* storage setup shared by the in-process tests and the storage child */

/* Opens a storage runtime on 127.0.0.1:0 with one source of `workers` workers, appends
 * `per_worker` 100-byte updates to each (batches of PREFILL_BATCH at one time), closes every
 * worker when `close_workers` is set, and starts the network thread. */
int store_prepare(struct store *s)
{
	sl_storage_config cfg;
	memset(s, 0, sizeof(*s));
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	/* The memory test puts 100,000 subscriptions on one connection, subscribed at once:
	 * above the default per-connection limits, which guard against hostile clients. */
	cfg.max_subscriptions = 1u << 20;
	cfg.subscribe_burst = 1u << 20;
	return sl_storage_open(&cfg, &s->st);
}

/* The rest of store_open on a prepared runtime (in a cluster: only the hosted workers). */
int store_fill_start(struct store *s, uint32_t workers, uint64_t per_worker, int close_workers)
{
	int rc;
	if ((rc = sl_source_register(s->st, "bench", "bench", workers, 0, &s->src)) != 0)
		goto err_close;
	s->workers = workers;
	if (per_worker > 0) {
		size_t batch = per_worker < PREFILL_BATCH ? (size_t)per_worker : PREFILL_BATCH;
		uint8_t *buf = malloc(batch * ROW_BYTES);
		sl_update *ups = malloc(batch * sizeof(*ups));
		if (buf == NULL || ups == NULL) {
			free(buf);
			free(ups);
			rc = SL_ENOMEM;
			goto err_close;
		}
		for (size_t i = 0; i < batch; i++) {
			fill_row(buf + i * ROW_BYTES, i);
			ups[i].row = (sl_bytes){buf + i * ROW_BYTES, ROW_BYTES};
			ups[i].diff = 1;
		}
		for (uint32_t w = 0; w < workers && rc == 0; w++) {
			uint64_t left = per_worker, t = 1;
			if (!sl_source_hosts(s->src, w))
				continue;
			while (left > 0 && rc == 0) {
				size_t n = left < batch ? (size_t)left : batch;
				for (size_t i = 0; i < n; i++)
					ups[i].time = t;
				rc = sl_source_append(s->src, w, SL_OK, ups, n);
				left -= n;
				t++;
			}
			if (rc == 0 && !close_workers)
				rc = sl_source_advance(s->src, w, t);
		}
		free(buf);
		free(ups);
		if (rc != 0)
			goto err_close;
	}
	if (close_workers)
		for (uint32_t w = 0; w < workers && rc == 0; w++)
			if (sl_source_hosts(s->src, w))
				rc = sl_source_close_worker(s->src, w);
	if (rc != 0 || (rc = sl_storage_start(s->st)) != 0)
		goto err_close;
	return 0;
err_close:
	sl_storage_close(s->st);
	s->st = NULL;
	return rc;
}

int store_open(uint32_t workers, uint64_t per_worker, int close_workers, struct store *s)
{
	int rc = store_prepare(s);
	return rc != 0 ? rc : store_fill_start(s, workers, per_worker, close_workers);
}

void store_close(struct store *s)
{
	sl_storage_close(s->st);
	s->st = NULL;
}

uint32_t client_window; /* --window; 0 = the runtime's default */

int client_open(int port, sl_client **out)
{
	char addr[64];
	sl_client_config cfg;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	sl_client_config_init(&cfg);
	cfg.server = addr;
	if (client_window)
		cfg.window = client_window;
	return sl_client_open(&cfg, out);
}
