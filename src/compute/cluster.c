/*
 * cluster.c - the cluster map: learnt at open from the process cfg->server names, every other
 * process joined (at the reachable address with the highest term) and checked to describe the
 * same cluster; and what the map tells callers (the home process's term, the process count).
 *
 * A subscription lives on the connection to the process that owns its worker (worker mod
 * processes: sli_worker_proc); a one-process client (cfg.one_process, a standby following one
 * process of a cluster) has one connection for all.  Fixed at open: this file owns c->conns,
 * c->nconns, c->home, c->fingerprint and c->map*.
 */
#include "compute/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tls.h"

/* Connects to process i of the map (the reachable one of its addresses with the highest term),
 * exchanges Hello and checks that it describes the same cluster as the home process did. */
static int join_process(sl_client *c, sli_conn *k, uint32_t i)
{
	sli_cluster_view w = {0};
	uint64_t s, e, t = 0;
	int rc;
	if ((rc = sli_conn_init(c, k, i, "")) != 0 || (rc = sli_conn_set_alts(k, c->map[i], '/')) != 0)
		return rc;
	if (k->nalts > 1) {
		int j = sli_pick_addr(c, k->alts, k->nalts, 0, &t);
		if (j < 0) {
			char why[512];
			snprintf(why, sizeof(why), "%s", sl_client_last_error());
			sli_set_last_error("storage process %u of %u: %s", i, c->map_count, why);
			return j;
		}
		snprintf(k->addr, sizeof(k->addr), "%s", k->alts[j]);
	}
	if ((rc = sli_conn_connect(k, &s, &e)) != 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", sl_client_last_error());
		sli_set_last_error("storage process %u of %u: %s", i, c->map_count, why);
		return rc;
	}
	if ((rc = sli_ask_cluster(k, &w)) != 0) {
		free(w.addrs);
		rc = rc == 1 ? SL_ECLUSTER : rc == 2 ? SL_ETIMEDOUT : rc;
		sli_set_last_error("storage process %u at %s gave no cluster map: %s", i, k->addr,
		                   sl_strerror(rc));
		return rc;
	}
	int same = w.fingerprint == c->fingerprint && w.count == c->map_count && w.process == i;
	for (uint32_t j = 0; same && j < w.count; j++)
		same = strcmp(w.addrs[j], c->map[j]) == 0;
	free(w.addrs);
	if (!same) {
		sli_set_last_error("storage process %u at %s disagrees about the cluster: it says "
		                   "fingerprint %016llx, process %u of %u; %s says fingerprint "
		                   "%016llx, %u processes", i, k->addr,
		                   (unsigned long long)w.fingerprint, w.process, w.count, c->server,
		                   (unsigned long long)c->fingerprint, c->map_count);
		return SL_ECLUSTER;
	}
	atomic_store(&k->term, w.term);
	return 0;
}

int sli_cluster_open(sl_client *c)
{
	sli_conn first;
	sli_cluster_view v = {0};
	uint64_t session = 0, epoch = 0;
	const char *home_addr = c->server;
	int rc;
	if (c->naddrs > 1) {
		uint64_t t = 0;
		int i = sli_pick_addr(c, c->addrs, c->naddrs, 0, &t);
		if (i < 0)
			return i;
		home_addr = c->addrs[i];
	}
	if ((rc = sli_conn_init(c, &first, 0, home_addr)) != 0)
		return rc;
	if ((rc = sli_conn_connect(&first, &session, &epoch)) != 0)
		goto err_first;
	if ((rc = sli_ask_cluster(&first, &v)) == 1) {
		/* a server without clusters: it closed the connection; connect again, alone */
		sli_tls_free(first.ssl);
		first.ssl = NULL;
		close(first.fd);
		first.fd = -1;
		v.count = 1;
		if ((rc = sli_conn_connect(&first, &session, &epoch)) != 0)
			goto err_first;
	} else if (rc == 2) {
		/* Hello but no cluster map: a lone server, silent for now.  The runtime's idle timeout
		 * deals with a server that stays silent; a late answer is ignored. */
		v.count = 1;
	} else if (rc != 0) {
		sli_set_last_error("no cluster map from storage at %s: %s", c->server, sl_strerror(rc));
		goto err_first;
	}
	c->srv_session = session;
	c->srv_epoch = epoch;
	c->fingerprint = v.fingerprint;
	c->map_count = v.count;
	c->map_process = v.count > 1 ? v.process : 0;
	c->map = v.addrs; /* NULL from a server without cluster maps */
	v.addrs = NULL;
	c->nconns = v.count > 1 && !c->cfg.one_process ? v.count : 1;
	c->home = c->nconns > 1 ? v.process : 0;
	/* The home process's addresses: a lone process's are the ones we were given; a cluster
	 * process's, its map entry (where the address we reached stays first). */
	first.index = c->home;
	atomic_store(&first.term, v.term);
	if (c->cfg.one_process)
		rc = sli_conn_set_alts(&first, home_addr, ','); /* the one address it follows */
	else if (v.count > 1 || (c->map != NULL && strchr(c->map[0], '/') != NULL))
		rc = sli_conn_set_alts(&first, c->map[c->map_process], '/');
	else
		rc = sli_conn_set_alts(&first, c->server, ',');
	if (rc != 0)
		goto err_first;
	if ((c->conns = calloc(c->nconns, sizeof(*c->conns))) == NULL) {
		rc = SL_ENOMEM;
		goto err_first;
	}
	for (uint32_t i = 0; i < c->nconns; i++)
		c->conns[i].fd = c->conns[i].timerfd = -1;
	c->conns[c->home] = first;
	/* moved: what first held is the home connection's now */
	memset(&first, 0, sizeof(first));
	first.fd = first.timerfd = -1;
	sli_buf_init(&first.out);
	for (uint32_t i = 0; i < c->nconns; i++) {
		if (i != c->home && (rc = join_process(c, &c->conns[i], i)) != 0)
			goto err_conns;
	}
	return 0;
err_conns:
	for (uint32_t i = 0; i < c->nconns; i++)
		sli_conn_fini(&c->conns[i]);
	free(c->conns);
	c->conns = NULL;
err_first:
	free(v.addrs);
	free(c->map);
	c->map = NULL;
	sli_conn_fini(&first);
	return rc;
}

uint64_t sl_client_term(sl_client *c)
{
	return c ? atomic_load(&c->conns[c->home].term) : 0;
}

int sl_client_cluster(sl_client *c, uint32_t *processes)
{
	if (c == NULL)
		return SL_EARG;
	if (processes)
		*processes = c->map_count;
	return 0;
}

void sli_client_map(const sl_client *c, uint64_t *fingerprint, uint32_t *count,
                    uint32_t *process, const char (**entries)[SLI_MAP_ENTRY_MAX])
{
	*fingerprint = c->fingerprint;
	*count = c->map_count;
	*process = c->map_process;
	*entries = (const char (*)[SLI_MAP_ENTRY_MAX])c->map;
}
