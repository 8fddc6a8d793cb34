/*
 * runtime.c - the storage runtime's lifecycle: configuration, the listening socket, the network
 * thread and its loop callbacks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "net/loop.h"
#include "net/sock.h"
#include "storage/security.h"
#include "storage/storage_int.h"

SL_API void sl_storage_config_init(sl_storage_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = "127.0.0.1:6876";
	cfg->max_frame = SLI_FRAME_MAX_DEFAULT;
	cfg->heartbeat_ms = 1000;
	cfg->idle_timeout_ms = 10000;
	cfg->out_high_water = 1u << 20;
	cfg->max_batch_bytes = 256ull << 20;
	cfg->fsync = SL_FSYNC_INTERVAL;
	cfg->fsync_interval_ms = 1000;
	cfg->segment_size = 16u << 20;
	cfg->max_connections = 1024;
	cfg->max_subscriptions = 65536;
	cfg->subscribe_rate = 10000;
	cfg->subscribe_burst = 65536;
	cfg->handshake_timeout_ms = 5000;
	cfg->max_output = 64u << 20;
	cfg->max_batch_rows = 1u << 22;
	cfg->max_row = SL_ROW_MAX;
}

SL_API uint64_t sl_storage_epoch(const sl_storage *st)
{
	return st->epoch;
}

static void on_wake(sli_loop *l, void *arg)
{
	sli_metrics_on_wake(arg);
	sli_truncate_on_wake(arg);
	sli_serve_dirty(arg);
}

static void on_tick(sli_loop *l, void *arg)
{
	sl_storage *st = arg;
	atomic_store_explicit(&st->last_tick_ms, sli_now_ms(), memory_order_relaxed);
	sli_conn_tick(arg);
	sli_repl_tick(arg);
	if (st->switch_deadline != 0)
		sli_switchover_tick(arg);
	sli_compact_tick(arg);
}

static void on_idle(sli_loop *l, void *arg)
{
	sl_storage *st = arg;
	/* Bytes OpenSSL already holds never make the socket readable again: read them now. */
	sli_conn_read_pending(st);
	/* Requests of this round (Subscribe, Credit) may have made subscriptions ready. */
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (c->ready_head != NULL)
			sli_serve_conn(c);
	/* Every frame produced in this round leaves in one write per connection. */
	sli_conn_flush_all(st);
	sli_conn_sweep(st);
}

SL_API int sl_storage_open(const sl_storage_config *cfg, sl_storage **out)
{
	sl_storage_config def;
	if (cfg == NULL) {
		sl_storage_config_init(&def);
		cfg = &def;
	}
	sl_storage *st = calloc(1, sizeof(*st));
	int rc;
	if (st == NULL)
		return SL_ENOMEM;
	st->cfg = *cfg;
	sl_storage_config_init(&def);
	if (st->cfg.listen == NULL)
		st->cfg.listen = def.listen;
	if (st->cfg.max_frame == 0)
		st->cfg.max_frame = def.max_frame;
	if (st->cfg.max_frame < 2 * SLI_BLOCK_MAX || st->cfg.max_frame > SLI_FRAME_MAX_LIMIT) {
		free(st);
		return SL_EARG;
	}
	if (st->cfg.heartbeat_ms == 0)
		st->cfg.heartbeat_ms = def.heartbeat_ms;
	if (st->cfg.idle_timeout_ms == 0)
		st->cfg.idle_timeout_ms = def.idle_timeout_ms;
	if (st->cfg.out_high_water == 0)
		st->cfg.out_high_water = def.out_high_water;
	if (st->cfg.max_batch_bytes == 0)
		st->cfg.max_batch_bytes = def.max_batch_bytes;
	if (st->cfg.fsync_interval_ms == 0)
		st->cfg.fsync_interval_ms = def.fsync_interval_ms;
	if (st->cfg.segment_size == 0)
		st->cfg.segment_size = def.segment_size;
	if ((rc = sli_limits_check(&st->cfg, &def)) != 0) {
		free(st);
		return rc;
	}
	snprintf(st->listen, sizeof(st->listen), "%s", st->cfg.listen);
	st->cfg.listen = st->listen;
	atomic_store(&st->term, 1);
	sli_storage_set_error("%s", "");
	if ((rc = sli_security_new(&st->cfg, &st->sec)) != 0) {
		free(st);
		return rc;
	}
	/* the caller's strings are read during the call only: the copies live in st->sec */
	st->cfg.tls_cert = st->cfg.tls_key = st->cfg.tls_client_ca = st->cfg.tls_ca = NULL;
	st->cfg.auth_token = NULL;
	if (st->cfg.data_dir != NULL) {
		if ((st->data_dir = strdup(st->cfg.data_dir)) == NULL) {
			sli_security_free(st->sec);
			free(st);
			return SL_ENOMEM;
		}
		st->cfg.data_dir = st->data_dir;
		if ((rc = sli_storage_open_data_dir(st)) != 0) {
			free(st->data_dir);
			sli_security_free(st->sec);
			free(st);
			return rc;
		}
	}
	pthread_mutex_init(&st->src_mu, NULL);
	pthread_mutex_init(&st->dirty_mu, NULL);
	pthread_mutex_init(&st->trunc_mu, NULL);
	pthread_cond_init(&st->trunc_cv, NULL);
	sli_metrics_init(st);
	if (getrandom(&st->session, sizeof(st->session), 0) != sizeof(st->session))
		st->session = (uint64_t)getpid() ^ sli_now_ms();
	if ((st->listen_fd = sli_listen_tcp(st->listen, &st->port)) < 0) {
		rc = st->listen_fd;
		sli_storage_set_error("cannot listen on %s: %s", st->listen, sl_strerror(rc));
		goto err_free;
	}
	if ((rc = sli_loop_new(&st->loop)) != 0)
		goto err_close;
	if ((rc = sli_loop_add(st->loop, st->listen_fd, SLI_READ, sli_conn_accept, st)) != 0)
		goto err_loop;
	sli_loop_on_wake(st->loop, on_wake, st);
	/* Ticks at a quarter of the heartbeat: timeouts are noticed within that much of late. */
	uint32_t tick = st->cfg.heartbeat_ms / 4 ? st->cfg.heartbeat_ms / 4 : 1;
	sli_loop_on_tick(st->loop, tick, on_tick, st);
	sli_loop_on_idle(st->loop, on_idle, st);
	if ((rc = sli_repl_open(st)) != 0)
		goto err_loop;
	if ((rc = sli_sync_start(st)) != 0) {
		sli_repl_free(st);
		goto err_loop;
	}
	*out = st;
	return 0;
err_loop:
	sli_loop_free(st->loop);
err_close:
	close(st->listen_fd);
err_free:
	sli_metrics_fini(st);
	pthread_mutex_destroy(&st->src_mu);
	pthread_mutex_destroy(&st->dirty_mu);
	pthread_mutex_destroy(&st->trunc_mu);
	pthread_cond_destroy(&st->trunc_cv);
	free(st->data_dir);
	sli_security_free(st->sec);
	free(st);
	return rc;
}

SL_API const char *sl_storage_data_dir(const sl_storage *st)
{
	return st->data_dir;
}

SL_API int sl_storage_port(const sl_storage *st)
{
	return st->port;
}

static void *storage_thread(void *arg)
{
	sl_storage *st = arg;
	sli_loop_run(st->loop);
	return NULL;
}

SL_API uint64_t sl_storage_loop_idle_ms(const sl_storage *st)
{
	uint64_t last = atomic_load_explicit(&st->last_tick_ms, memory_order_relaxed);
	uint64_t now = sli_now_ms();
	return last == 0 ? UINT64_MAX : now > last ? now - last : 0;
}

SL_API int sl_storage_start(sl_storage *st)
{
	if (st->started)
		return SL_EARG;
	/* Only a restart (epoch > 1) has clients coming back; they retry with a backoff of at
	 * most about 2.5 s, so 10 s is ample. */
	st->compact_after_ms = sli_now_ms() + (st->epoch > 1 ? 10000 : 0);
	int rc = pthread_create(&st->thread, NULL, storage_thread, st);
	if (rc != 0)
		return -rc;
	st->started = 1;
	sli_peers_start(st); /* best effort: only a report depends on it */
	return 0;
}

SL_API void sl_storage_close(sl_storage *st)
{
	if (st == NULL)
		return;
	sli_metrics_http_stop(st); /* first: its scrapes wait for the loop */
	sli_storage_stop_follower(st);
	sli_fencer_stop(st);
	sli_peers_stop(st);
	if (st->started) {
		sli_loop_stop(st->loop);
		pthread_join(st->thread, NULL);
	}
	while (st->conns) {
		struct conn *c = st->conns;
		st->conns = c->next;
		sli_conn_free(c);
	}
	sli_loop_del(st->loop, st->listen_fd);
	close(st->listen_fd);
	sli_loop_free(st->loop);
	st->loop = NULL;
	sli_sync_stop(st);
	sli_repl_free(st);
	sli_sources_free(st);
	free(st->data_dir);
	for (uint32_t i = 0; st->cluster && i < st->cluster_size; i++)
		free(st->cluster[i]);
	free(st->cluster);
	free(st->standby_of);
	sli_security_free(st->sec);
	sli_metrics_fini(st);
	pthread_mutex_destroy(&st->src_mu);
	pthread_mutex_destroy(&st->dirty_mu);
	pthread_mutex_destroy(&st->trunc_mu);
	pthread_cond_destroy(&st->trunc_cv);
	free(st);
}
