/*
 * cli_stat_json.c - `sluice stat --json`: the same view as the tables, as one JSON document
 * for scripts and monitoring (jansson).  The fields are documented in sluice(1).
 *
 * Counters and times are JSON integers; an upper that is closed is null with "closed": true
 * beside it, and the lag of a subscription whose worker is closing is null.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_stat.h"

static json_t *num(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *num_label(const sample *s, const char *key)
{
	return json_integer((json_int_t)strtoll(stat_label(s, key), NULL, 10));
}

/* Every sample named `name` of r, made into an object by `row`, in an array. */
static json_t *rows(const report *r, const char *name,
                    json_t *(*row)(const report *r, const sample *s, size_t *hints))
{
	json_t *a = json_array();
	size_t hints[4] = {0};
	for (size_t i = 0; a != NULL && i < r->n; i++)
		if (strcmp(r->s[i].name, name) == 0 && json_array_append_new(a, row(r, &r->s[i], hints)) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *worker_row(const report *r, const sample *s, size_t *h)
{
	const char *src = stat_label(s, "source"), *w = stat_label(s, "worker");
	uint64_t upper = stat_value_u64(s);
	uint64_t bytes = stat_value_u64(stat_find_h(r, &h[1], "sluice_log_bytes", "source", src, "worker", w));
	/* Two log samples per worker (ok, err): the second search starts past the first. */
	bytes += stat_value_u64(stat_find_h(r, &h[1], "sluice_log_bytes", "source", src, "worker", w));
	int blocked = stat_value_u64(stat_find_h(r, &h[2], "sluice_worker_append_blocked", "source",
	                                         src, "worker", w)) != 0;
	return json_pack("{s:s, s:o, s:o, s:b, s:o, s:o, s:b}", "source", src, "worker",
	                 num_label(s, "worker"), "upper", upper == UINT64_MAX ? json_null() : num(upper),
	                 "closed", upper == UINT64_MAX, "since",
	                 num(stat_value_u64(stat_find_h(r, &h[0], "sluice_source_since", "source", src,
	                                                "worker", w))),
	                 "log_bytes", num(bytes), "append_blocked", blocked);
}

static json_t *conn_row(const report *r, const sample *s, size_t *h)
{
	const char *c = stat_label(s, "conn");
	return json_pack("{s:o, s:s, s:o, s:o, s:o}", "conn", num_label(s, "conn"), "peer",
	                 stat_label(s, "peer"), "subscriptions", num(stat_value_u64(s)), "bytes_in",
	                 num(stat_value_u64(stat_find_h(r, &h[0], "sluice_connection_bytes_in_total",
	                                                "conn", c, NULL, NULL))),
	                 "bytes_out",
	                 num(stat_value_u64(stat_find_h(r, &h[1], "sluice_connection_bytes_out_total",
	                                                "conn", c, NULL, NULL))));
}

static json_t *sub_row(const report *r, const sample *s, size_t *h)
{
	const char *c = stat_label(s, "conn"), *hd = stat_label(s, "handle");
	uint64_t lag = stat_value_u64(s);
	return json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o}", "conn", num_label(s, "conn"),
	                 "handle", num_label(s, "handle"), "source", stat_label(s, "source"), "worker",
	                 num_label(s, "worker"), "dataflow", num_label(s, "dataflow"), "sent_upper",
	                 num(stat_value_u64(stat_find_h(r, &h[0], "sluice_subscription_sent_upper",
	                                                "conn", c, "handle", hd))),
	                 "lag", lag == UINT64_MAX ? json_null() : num(lag), "credit_bytes",
	                 num(stat_value_u64(stat_find_h(r, &h[1], "sluice_subscription_credit_bytes",
	                                                "conn", c, "handle", hd))));
}

/* A standby of the process, as its leader reports it: in sync or not, and its largest lag. */
static json_t *replica_row(const report *r, const sample *s, size_t *h)
{
	uint64_t lag = 0;
	(void)h;
	for (size_t j = 0; j < r->n; j++)
		if (strcmp(r->s[j].name, "sluice_replica_lag") == 0 &&
		    strcmp(stat_label(&r->s[j], "member"), stat_label(s, "member")) == 0 &&
		    stat_value_u64(&r->s[j]) > lag)
			lag = stat_value_u64(&r->s[j]);
	return json_pack("{s:s, s:b, s:o}", "member", stat_label(s, "member"), "insync",
	                 stat_value_u64(s) != 0, "lag", num(lag));
}

static uint64_t sum(const report *r, const char *name)
{
	uint64_t t = 0;
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->s[i].name, name) == 0)
			t += stat_value_u64(&r->s[i]);
	return t;
}

static json_t *process(const char *server, const view *v, size_t p)
{
	const char *addr = v->n > 1 && v->addrs != NULL ? v->addrs[p] : server;
	const report *r = &v->r[p];
	json_t *o;

	if (v->texts[p] == NULL)
		return json_pack("{s:I, s:s, s:s}", "process", (json_int_t)p, "address", addr, "error",
		                 v->errs[p]);
	o = json_pack("{s:I, s:s, s:n, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:f}",
	              "process", (json_int_t)p, "address", addr, "error",
	              "connections", num(sum(r, "sluice_connections")),
	              "connections_accepted", num(sum(r, "sluice_connections_accepted_total")),
	              "subscriptions", num(sum(r, "sluice_subscriptions")),
	              "bytes_in", num(sum(r, "sluice_bytes_in_total")),
	              "bytes_out", num(sum(r, "sluice_bytes_out_total")),
	              "frames_in", num(sum(r, "sluice_frames_in_total")),
	              "frames_out", num(sum(r, "sluice_frames_out_total")),
	              "errors", num(sum(r, "sluice_errors_total")),
	              "log_syncs", num(stat_value_u64(stat_find(r, "sluice_fsync_seconds_count", NULL, NULL, NULL, NULL))),
	              "log_sync_seconds", stat_value_f(stat_find(r, "sluice_fsync_seconds_sum", NULL, NULL, NULL, NULL)));
	const sample *b = stat_find(r, "sluice_build_info", NULL, NULL, NULL, NULL);
	if (o == NULL ||
	    json_object_set_new(o, "version", b ? json_string(stat_label(b, "version")) : json_null()) != 0 ||
	    json_object_set_new(o, "revision", b ? json_string(stat_label(b, "revision")) : json_null()) != 0 ||
	    json_object_set_new(o, "workers", rows(r, "sluice_source_upper", worker_row)) != 0 ||
	    json_object_set_new(o, "connection_list", rows(r, "sluice_connection_subscriptions", conn_row)) != 0 ||
	    json_object_set_new(o, "subscription_list", rows(r, "sluice_subscription_lag", sub_row)) != 0 ||
	    json_object_set_new(o, "term", num(sum(r, "sluice_term"))) != 0 ||
	    json_object_set_new(o, "leader", json_boolean(sum(r, "sluice_leader") != 0)) != 0 ||
	    json_object_set_new(o, "insync_copies", num(sum(r, "sluice_insync_copies"))) != 0 ||
	    json_object_set_new(o, "min_insync", num(sum(r, "sluice_min_insync"))) != 0 ||
	    json_object_set_new(o, "replicas", rows(r, "sluice_replica_insync", replica_row)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int stat_print_json(const char *server, const view *v)
{
	json_t *doc = json_pack("{s:s, s:[]}", "server", server, "processes");
	json_t *procs = doc ? json_object_get(doc, "processes") : NULL;
	int rc = 0;

	for (size_t p = 0; procs != NULL && p < v->n; p++)
		if (json_array_append_new(procs, process(server, v, p)) != 0)
			procs = NULL;
	if (procs == NULL || json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
		rc = -1;
	else
		fputc('\n', stdout);
	json_decref(doc);
	return rc;
}
