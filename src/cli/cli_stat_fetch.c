/*
 * cli_stat_fetch.c - the conversations of `sluice stat`: each refresh is one short conversation
 * on a fresh connection: Hello, ClusterMap and StatsRequest, answered by Hello, Cluster and the
 * Stats frame (the server's report in the Prometheus text format, the same text its GET
 * /metrics serves) or an Error, within a deadline; then Hello and StatsRequest to every other
 * process the map names.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_stat.h"
#include "proto/proto.h"

#define STAT_MAX_FRAME (SLI_FRAME_MAX_DEFAULT + 1024u)

void stat_cmap_fini(struct cmap *m)
{
	for (uint32_t i = 0; m->addrs != NULL && i < m->n; i++)
		free(m->addrs[i]);
	free(m->addrs);
	memset(m, 0, sizeof(*m));
}

static int cmap_set(struct cmap *m, const sli_cluster *c)
{
	sl_bytes rest = c->addrs, a;
	if ((m->addrs = calloc(c->count, sizeof(*m->addrs))) == NULL)
		return SL_ENOMEM;
	m->n = c->count;
	m->self = c->process;
	for (uint32_t i = 0; i < c->count; i++) {
		if (sli_strs_next(&rest, &a) != 1 || (m->addrs[i] = strndup((const char *)a.ptr, a.len)) == NULL) {
			stat_cmap_fini(m);
			return SL_ENOMEM;
		}
	}
	return 0;
}

/* Fetches the report text into *text (malloc'ed, NUL-terminated; the caller frees it) and, when
 * map is not NULL, the cluster map too (asked in the same conversation).  On failure, a
 * one-line reason in err. */
static int fetch_stats(const char *server, char **text, struct cmap *map, char *err, size_t errlen)
{
	size_t cap = STAT_MAX_FRAME, len = 0;
	uint8_t *buf = NULL;
	sli_buf out;
	cli_conn k;
	int rc;

	if ((rc = cli_conn_open(&k, server, STAT_TIMEOUT_MS, err, errlen)) != 0)
		return rc;
	sli_buf_init(&out);
	sli_frame hello, req = {.type = SLI_STATS_REQUEST}, cm = {.type = SLI_CLUSTER_MAP};
	cli_conn_hello(&hello, "sluice stat");
	if (sli_frame_encode(&out, &hello) != 0 || (map != NULL && sli_frame_encode(&out, &cm) != 0) ||
	    sli_frame_encode(&out, &req) != 0 || (buf = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = SL_ENOMEM;
		goto out;
	}
	if ((rc = cli_conn_send(&k, &out)) != 0) {
		snprintf(err, errlen, "cannot send to %s: %s", server, sl_strerror(rc));
		goto out;
	}
	for (;;) {
		sli_frame f;
		ssize_t r = cli_conn_next(&k, buf, cap, &len, &f, 0);
		if (r < 0) {
			rc = (int)r;
			if (rc == SL_EPROTO || rc == SL_ETOOBIG)
				snprintf(err, errlen, "bad answer from %s: %s", server, sl_strerror(rc));
			else
				snprintf(err, errlen, "no stats from %s: %s (is it a sluice storage server?)",
				         server, sl_strerror(rc));
			goto out;
		}
		if (f.type == SLI_STATS) {
			if ((*text = malloc(f.u.stats.text.len + 1)) == NULL) {
				rc = SL_ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			memcpy(*text, f.u.stats.text.ptr, f.u.stats.text.len);
			(*text)[f.u.stats.text.len] = '\0';
			goto out;
		}
		if (f.type == SLI_CLUSTER && map != NULL && map->addrs == NULL &&
		    (rc = cmap_set(map, &f.u.cluster)) != 0) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if (f.type == SLI_ERROR) {
			rc = f.u.error.code;
			snprintf(err, errlen, "%s refused: %.*s", server, (int)f.u.error.message.len,
			         (const char *)f.u.error.message.ptr);
			goto out;
		}
		/* the Cluster comes before the Stats */
		memmove(buf, buf + r, len - (size_t)r);
		len -= (size_t)r;
	}
out:
	if (rc != 0 && map != NULL)
		stat_cmap_fini(map);
	sli_buf_fini(&out);
	free(buf);
	cli_conn_close(&k);
	return rc;
}

void stat_view_fini(view *v)
{
	for (size_t p = 0; p < v->n; p++) {
		if (v->r != NULL)
			free(v->r[p].s);
		if (v->texts != NULL)
			free(v->texts[p]);
	}
	free(v->r);
	free(v->texts);
	free(v->errs);
	memset(v, 0, sizeof(*v));
}

/* fetch_stats for another process of the cluster, whose map entry is "ADDR" or, when it has
 * standbys, "PRIMARY/STANDBY/...": the first address of the entry that answers gives the
 * report (a standby answers too, after a failover).  The last failure's code otherwise. */
static int fetch_stats_entry(const char *entry, char **text, char *err, size_t errlen)
{
	char addr[256];
	int rc = SL_EARG;

	for (const char *p = entry;;) {
		size_t n = strcspn(p, "/");
		if (n < sizeof(addr)) {
			memcpy(addr, p, n);
			addr[n] = '\0';
			if ((rc = fetch_stats(addr, text, NULL, err, errlen)) == 0)
				return 0;
		}
		if (p[n] == '\0')
			return rc;
		p += n + 1;
	}
}

/* Fetches the reports of the server and of every other process of its cluster.  0 with *v
 * filled (some processes may be missing: *missing counts them), or an error for the server
 * itself (reason in err). */
int stat_view_fetch(const char *server, view *v, struct cmap *map, int *missing, char *err,
                      size_t errlen)
{
	char *text = NULL;
	int rc;
	*missing = 0;
	memset(v, 0, sizeof(*v));
	if ((rc = fetch_stats(server, &text, map, err, errlen)) != 0)
		return rc;
	size_t n = map->n > 0 ? map->n : 1;
	v->r = calloc(n, sizeof(*v->r));
	v->texts = calloc(n, sizeof(*v->texts));
	v->errs = calloc(n, sizeof(*v->errs));
	if (v->r == NULL || v->texts == NULL || v->errs == NULL) {
		free(text);
		stat_view_fini(v);
		snprintf(err, errlen, "out of memory");
		return SL_ENOMEM;
	}
	v->n = n;
	v->addrs = map->addrs;
	size_t self = n > 1 && map->self < n ? map->self : 0;
	v->texts[self] = text; /* the view owns it from here */
	for (size_t p = 0; p < n; p++) {
		if (p == self) {
			/* fetched above */
		} else if ((rc = fetch_stats_entry(map->addrs[p], &v->texts[p], err, errlen)) != 0) {
			/* Shown in the view: the reason alone (the address is beside it). */
			snprintf(v->errs[p], sizeof(v->errs[p]), "%s", sl_strerror(rc));
			v->texts[p] = NULL;
			(*missing)++;
			continue;
		}
		if (stat_parse_report(v->texts[p], &v->r[p]) != 0) {
			snprintf(err, errlen, "cannot parse the stats from %s", n > 1 ? map->addrs[p] : server);
			stat_view_fini(v);
			return SL_EPROTO;
		}
	}
	return 0;
}

/* The sum of a metric over every process (all its samples: every label set). */
uint64_t stat_total(const view *v, const char *name)
{
	uint64_t t = 0;
	for (size_t p = 0; p < v->n; p++)
		for (size_t i = 0; i < v->r[p].n; i++)
			if (strcmp(v->r[p].s[i].name, name) == 0)
				t += stat_value_u64(&v->r[p].s[i]);
	return t;
}

double stat_total_f(const view *v, const char *name)
{
	double t = 0;
	for (size_t p = 0; p < v->n; p++)
		t += stat_value_f(stat_find(&v->r[p], name, NULL, NULL, NULL, NULL));
	return t;
}
