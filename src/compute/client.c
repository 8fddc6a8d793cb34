/*
 * client.c - opening and closing a compute client: the configuration, the cluster joined
 * (cluster.c), the runtime thread started (runtime.c); at close, everything still in flight
 * ended once the runtime thread is gone.
 *
 * The work itself is elsewhere: see conn.h for the runtime thread's files, queue.c for a
 * worker's side, sources.c and ingest.c for the requests.
 */
#include "compute/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "net/tls.h"

#define WINDOW_DEFAULT (256u << 10)
#define WINDOW_MIN (128u << 10)
/* A subscription whose worker keeps up doubles its window up to this (see queue.c, grant). */
#define WINDOW_GROWN_MAX (4u << 20)
#define RETRY_FOR_DEFAULT 30000u

void sl_client_config_init(sl_client_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->server = "127.0.0.1:6876";
	cfg->window = WINDOW_DEFAULT;
	cfg->max_frame = SLI_FRAME_MAX_DEFAULT;
	cfg->connect_timeout_ms = 5000;
	cfg->heartbeat_ms = 1000;
	cfg->idle_timeout_ms = 10000;
	cfg->retry_for_ms = RETRY_FOR_DEFAULT;
}

int sl_client_server(sl_client *c, uint64_t *session, uint64_t *epoch, uint64_t *reconnects)
{
	if (c == NULL)
		return SL_EARG;
	pthread_mutex_lock(&c->mu);
	if (session)
		*session = c->srv_session;
	if (epoch)
		*epoch = c->srv_epoch;
	if (reconnects)
		*reconnects = c->reconnects;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* Frees the client and what it owns beside its connections (the per-process request tables,
 * the routing table, the address lists, TLS and token); NULL members are fine, so a client
 * that failed half way through opening is freed the same way as a closed one. */
static void client_free(sl_client *c)
{
	free(c->list_parts);
	free(c->list_nparts);
	free(c->append_state);
	free(c->append_rcs);
	free(c->append_times);
	free(c->append_msgs);
	free(c->wsrc);
	free(c->wcount);
	free(c->tbuckets);
	free(c->addrs);
	free(c->map);
	SSL_CTX_free(c->tls);
	free(c->token);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->list_mu);
	pthread_mutex_destroy(&c->append_mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

int sl_client_open(const sl_client_config *cfg, sl_client **out)
{
	sl_client_config def;
	sl_client *c;
	pthread_condattr_t ca;
	int rc;
	sli_set_last_error("%s", "");
	if (out == NULL)
		return SL_EARG;
	sl_client_config_init(&def);
	if (cfg == NULL)
		cfg = &def;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->list_mu, NULL);
	pthread_mutex_init(&c->append_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	c->cfg = *cfg;
	if (snprintf(c->server, sizeof(c->server), "%s", cfg->server ? cfg->server : def.server) >=
	    (int)sizeof(c->server)) {
		sli_set_last_error("server address too long");
		rc = SL_EARG;
		goto err_free;
	}
	c->cfg.server = c->server;
	if (strchr(c->server, ',') != NULL &&
	    (rc = sli_split_addrs(c->server, ',', &c->addrs, &c->naddrs)) != 0) {
		sli_set_last_error("bad server list '%s'", cfg->server);
		goto err_free;
	}
	if (c->cfg.window == 0)
		c->cfg.window = WINDOW_DEFAULT;
	if (c->cfg.window < WINDOW_MIN)
		c->cfg.window = WINDOW_MIN;
	if (c->cfg.max_frame == 0)
		c->cfg.max_frame = SLI_FRAME_MAX_DEFAULT;
	if (c->cfg.max_frame > SLI_FRAME_MAX_LIMIT)
		c->cfg.max_frame = SLI_FRAME_MAX_LIMIT;
	if (c->cfg.connect_timeout_ms <= 0)
		c->cfg.connect_timeout_ms = def.connect_timeout_ms;
	if (c->cfg.heartbeat_ms == 0)
		c->cfg.heartbeat_ms = def.heartbeat_ms;
	if (c->cfg.idle_timeout_ms == 0)
		c->cfg.idle_timeout_ms = def.idle_timeout_ms;
	if (c->cfg.tls_ca != NULL || c->cfg.tls_cert != NULL || c->cfg.tls_key != NULL) {
		char why[512];
		if ((rc = sli_tls_client_ctx(c->cfg.tls_ca, c->cfg.tls_cert, c->cfg.tls_key, &c->tls,
		                             why, sizeof(why))) != 0) {
			sli_set_last_error("%s", why);
			goto err_free;
		}
	}
	if (c->cfg.auth_token != NULL && (c->token = strdup(c->cfg.auth_token)) == NULL) {
		rc = SL_ENOMEM;
		goto err_free;
	}
	/* the caller's strings are read during the call only */
	c->cfg.tls_ca = c->cfg.tls_cert = c->cfg.tls_key = c->cfg.auth_token = NULL;
	c->credit_batch = c->cfg.window / 4;
	c->window_max = c->cfg.window > WINDOW_GROWN_MAX ? c->cfg.window : WINDOW_GROWN_MAX;
	if (getrandom(&c->session, sizeof(c->session), 0) != sizeof(c->session))
		c->session = sli_now_ms() ^ ((uint64_t)getpid() << 32);
	c->rng = c->session | 1;
	if ((rc = sli_cluster_open(c)) != 0)
		goto err_free;
	c->list_parts = calloc(c->nconns, sizeof(*c->list_parts));
	c->list_nparts = calloc(c->nconns, sizeof(*c->list_nparts));
	c->append_state = calloc(c->nconns, sizeof(*c->append_state));
	c->append_rcs = calloc(c->nconns, sizeof(*c->append_rcs));
	c->append_times = calloc(c->nconns, sizeof(*c->append_times));
	c->append_msgs = calloc(c->nconns, sizeof(*c->append_msgs));
	if (!c->list_parts || !c->list_nparts || !c->append_state || !c->append_rcs ||
	    !c->append_times || !c->append_msgs) {
		rc = SL_ENOMEM;
		goto err_conns;
	}
	c->on_lost = sli_failover_lost;
	if ((rc = sli_runtime_start(c)) != 0)
		goto err_conns;
	*out = c;
	return 0;
err_conns:
	for (uint32_t i = 0; i < c->nconns; i++)
		sli_conn_fini(&c->conns[i]);
	free(c->conns);
err_free:
	client_free(c);
	return rc;
}

void sl_client_close(sl_client *c)
{
	if (c == NULL)
		return;
	sli_runtime_stop(c);
	/* The runtime thread is gone: its state is ours now.  End what is still in flight; the
	 * queues were closed, so their items are dropped as they arrive. */
	pthread_mutex_lock(&c->mu);
	c->dead = 1;
	if (c->dead_code == 0) {
		c->dead_code = SL_ECLOSED;
		snprintf(c->dead_msg, sizeof(c->dead_msg), "client closed");
	}
	pthread_mutex_unlock(&c->mu);
	for (uint32_t i = 0; i < c->nconns; i++)
		c->conns[i].connected = 0;
	for (sli_cmd *cmd = sli_take_cmds(c), *nx; cmd; cmd = nx) {
		nx = cmd->next;
		sli_run_cmd(c, cmd);
	}
	for (uint32_t i = 0; i < c->nconns; i++) {
		sli_conn *k = &c->conns[i];
		for (uint32_t h = 0; h < k->nslots; h++)
			if (k->slots[h])
				sli_release(c, k->slots[h]);
		while (k->parked)
			sli_release(c, k->parked);
		sli_fail_append(k);
		sli_drop_output(k);
		if (k->fd >= 0)
			sli_loop_del(c->loop, k->fd);
		if (k->timerfd >= 0)
			sli_loop_del(c->loop, k->timerfd);
		sli_conn_fini(k);
	}
	sli_loop_free(c->loop);
	for (uint32_t i = 0; i < c->nconns; i++) {
		sl_source_info_free(c->list_parts[i], c->list_nparts[i]);
		free(c->append_msgs[i]);
	}
	free(c->conns);
	client_free(c);
}

