/*
 * cli_stat.h - the parts of `sluice stat` (cli_stat*.c): fetching every process's report,
 * parsing the Prometheus text into samples, and printing them as tables or as JSON.
 */
#ifndef SLUICE_CLI_STAT_H
#define SLUICE_CLI_STAT_H

#include <stddef.h>
#include <stdint.h>

#define STAT_TIMEOUT_MS 10000
#define MAX_LABELS 8

/* ---- the report, parsed (cli_stat_report.c) ---- */

typedef struct sample {
	const char *name;
	const char *key[MAX_LABELS], *val[MAX_LABELS];
	int nlabels;
	const char *value; /* as written: a number, or +Inf */
} sample;

typedef struct report {
	sample *s;
	size_t n, cap;
} report;

/* Parses the Prometheus text in place (text must outlive r).  0, or -1 for a malformed line. */
int stat_parse_report(char *text, report *r);
/* The value of label `key` of s, or "". */
const char *stat_label(const sample *s, const char *key);
/* The first sample named `name` whose labels k1 and k2 (NULL: any) have the values given.  The
 * search starts at *hint and wraps; *hint is left just past the match. */
const sample *stat_find_h(const report *r, size_t *hint, const char *name, const char *k1,
                          const char *v1, const char *k2, const char *v2);
const sample *stat_find(const report *r, const char *name, const char *k1, const char *v1,
                        const char *k2, const char *v2);
/* A sample's value: 0 for NULL, UINT64_MAX for +Inf. */
uint64_t stat_value_u64(const sample *s);
double stat_value_f(const sample *s);

/* ---- every process's report (cli_stat_fetch.c) ---- */

/* The processes of the cluster the server belongs to (one, outside a cluster). */
struct cmap {
	char **addrs; /* owned */
	uint32_t n, self;
};

/* The reports of every process (one outside a cluster); texts[i] NULL when process i did not
 * answer (errs[i] says why).  With more than one process, connections are named P:ID. */
typedef struct view {
	size_t n;
	report *r;
	char **texts;
	char (*errs)[256];
	char **addrs;
} view;

void stat_cmap_fini(struct cmap *m);
/* Fetches the reports of the server and of every other process of its cluster.  0 with *v
 * filled (some processes may be missing: *missing counts them), or an error for the server
 * itself (reason in err). */
int stat_view_fetch(const char *server, view *v, struct cmap *map, int *missing, char *err,
                    size_t errlen);
void stat_view_fini(view *v);
/* The sum of a metric over every process (all its samples: every label set). */
uint64_t stat_total(const view *v, const char *name);
double stat_total_f(const view *v, const char *name);

/* ---- output ---- */

/* The tables, every line within 80 columns (cli_stat_text.c).  0, or -1 out of memory. */
int stat_print_view(const char *server, const view *v);
/* One JSON document on stdout (cli_stat_json.c).  0, or -1 out of memory. */
int stat_print_json(const char *server, const view *v);

#endif
