/*
 * cli_tail.c - `sluice tail`: prints the updates of a source as they arrive, or with
 * --consolidate the counts per row at the end (the consolidation table below).
 *
 * It runs one compute queue on the main thread: it subscribes every worker of the source, and
 * polls the queue's fd together with a signalfd for SIGINT/SIGTERM, so a signal ends the run
 * cleanly (printing the consolidated result with --consolidate).  Output goes through one large
 * buffer flushed whenever the queue runs dry.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sluice/compute.h"

#define OUT_BUF (1u << 20)
#define DRAIN_MAX 4096 /* events taken before the signal fd is looked at again */

static const char usage_tail[] =
	"usage: sluice tail [--server HOST:PORT] [--from T] [--until T] [--progress] [--consolidate]\n"
	"                   [--retry-for S] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n"
	"                   [--auth-token-file FILE] SOURCE\n"
	"\n"
	"Subscribes to every worker of SOURCE and prints one tab-separated line per update:\n"
	"  ok TIME DIFF ROW        an update of the ok collection\n"
	"  err TIME DIFF MESSAGE   an update of the err collection\n"
	"  progress TIME           (--progress) the minimum frontier over all workers advanced\n"
	"  progress closed         (--progress) the source closed before --until was reached\n"
	"A tab, newline or backslash in a row is printed as \\t, \\n, \\\\.\n"
	"\n"
	"  --server HOST:PORT   storage server (default " CLI_DEFAULT_SERVER "); a comma-separated list\n"
	"                       names a primary and its standbys: the one with the highest term is used\n"
	"  --from T             only updates at times >= T\n"
	"  --until T            stop once every worker's frontier is >= T; only updates at times < T\n"
	"  --progress           print progress lines\n"
	"  --consolidate        print nothing while running; at the end print 'ok ROW COUNT' lines,\n"
	"                       then 'err MESSAGE COUNT' lines, sorted by row, zero counts left out\n"
	"  --retry-for S        after losing the connection, reconnect and resume for up to S\n"
	"                       seconds (default 30; 0 = give up at once); the output is the same\n"
	"                       as without the outage\n"
	CLI_SECURITY_HELP
	"Without --until it runs until the source closes or SIGINT/SIGTERM.\n";

/* ------------------------------------------------------------------------------------------ */
/* consolidation: counts per (collection, row) */

/* Counts are kept per worker, so a worker's part can be dropped when storage re-snapshots it;
 * they are summed over workers when printed. */
typedef struct centry {
	uint64_t hash; /* 0 = empty slot */
	uint8_t *row;
	uint32_t len;
	uint32_t worker;
	uint8_t coll;
	int64_t count;
} centry;

typedef struct ctable {
	centry *slots;
	size_t cap, used;
} ctable;

static uint64_t row_hash(uint8_t coll, uint32_t worker, const uint8_t *p, size_t n)
{
	uint64_t h = (0xcbf29ce484222325ull ^ coll ^ ((uint64_t)worker << 8)) * 0x100000001b3ull;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 29;
	return h ? h : 1;
}

static int ctable_grow(ctable *t)
{
	size_t cap = t->cap ? t->cap * 2 : 4096, i, j;
	centry *s = calloc(cap, sizeof(*s));

	if (s == NULL)
		return -1;
	for (i = 0; i < t->cap; i++) {
		if (t->slots[i].hash == 0)
			continue;
		for (j = t->slots[i].hash & (cap - 1); s[j].hash != 0; j = (j + 1) & (cap - 1))
			;
		s[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = s;
	t->cap = cap;
	return 0;
}

static int ctable_add(ctable *t, uint8_t coll, uint32_t worker, sl_bytes row, int64_t diff)
{
	uint64_t h = row_hash(coll, worker, row.ptr, row.len);
	size_t j;
	centry *e;

	if ((t->used + 1) * 4 > t->cap * 3 && ctable_grow(t) != 0)
		return -1;
	for (j = h & (t->cap - 1);; j = (j + 1) & (t->cap - 1)) {
		e = &t->slots[j];
		if (e->hash == 0)
			break;
		if (e->hash == h && e->coll == coll && e->worker == worker && e->len == row.len &&
		    memcmp(e->row, row.ptr, row.len) == 0) {
			e->count += diff;
			return 0;
		}
	}
	if ((e->row = malloc(row.len ? row.len : 1)) == NULL)
		return -1;
	memcpy(e->row, row.ptr, row.len);
	e->hash = h;
	e->len = (uint32_t)row.len;
	e->coll = coll;
	e->worker = worker;
	e->count = diff;
	t->used++;
	return 0;
}

static int centry_cmp(const void *a, const void *b)
{
	const centry *x = *(const centry *const *)a, *y = *(const centry *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n ? memcmp(x->row, y->row, n) : 0;

	if (c != 0)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

static int ctable_print(ctable *t, cli_out *o)
{
	static const char *const names[2] = {"ok\t", "err\t"};
	centry **list;
	size_t i, n;
	int coll;

	if ((list = malloc((t->used + 1) * sizeof(*list))) == NULL)
		return -1;
	for (coll = 0; coll < 2; coll++) {
		for (i = 0, n = 0; i < t->cap; i++) {
			if (t->slots[i].hash != 0 && t->slots[i].coll == coll && t->slots[i].count != 0)
				list[n++] = &t->slots[i];
		}
		qsort(list, n, sizeof(*list), centry_cmp);
		for (i = 0; i < n;) {
			/* The same row from several workers: one line with the sum. */
			size_t k = i + 1;
			int64_t sum = list[i]->count;
			while (k < n && centry_cmp(&list[i], &list[k]) == 0)
				sum += list[k++]->count;
			if (sum != 0) {
				cli_out_str(o, names[coll]);
				cli_out_escaped(o, list[i]->row, list[i]->len);
				cli_out_char(o, '\t');
				cli_out_i64(o, sum);
				cli_out_char(o, '\n');
			}
			i = k;
		}
	}
	free(list);
	return 0;
}

/* Forgets everything counted from one worker (storage re-sends it as a snapshot). */
static void ctable_drop_worker(ctable *t, uint32_t worker)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].hash != 0 && t->slots[i].worker == worker)
			t->slots[i].count = 0;
}

static void ctable_fini(ctable *t)
{
	size_t i;

	for (i = 0; i < t->cap; i++)
		free(t->slots[i].row);
	free(t->slots);
}

/* ------------------------------------------------------------------------------------------ */
/* sluice tail */

typedef struct tail {
	const char *server, *name;
	uint64_t from, until;
	int has_until, progress, consolidate;
	uint32_t workers;
	uint64_t *frontier; /* per worker */
	uint64_t shown;     /* the last minimum frontier printed (or passed over) */
	int seen_until;     /* an update at a time >= until arrived: the source was open there */
	ctable table;
	cli_out out;
} tail;

static uint64_t tail_min_frontier(const tail *t)
{
	uint64_t m = SL_TIME_CLOSED;
	uint32_t w;

	for (w = 0; w < t->workers; w++) {
		if (t->frontier[w] < m)
			m = t->frontier[w];
	}
	return m;
}

/* Takes one event.  Returns 1 when tail is done, 0 to go on, or -1 after printing a fatal
 * error. */
static int tail_event(tail *t, const sl_event *ev)
{
	static const char *const names[2] = {"ok\t", "err\t"};
	sl_iter it;
	sl_bytes row;
	int64_t diff;
	uint64_t m;

	switch (ev->kind) {
	case SL_EV_SUBSCRIBED:
		return 0;
	case SL_EV_SUBSCRIBE_ERROR:
		fprintf(stderr, "sluice: cannot subscribe to %s worker %" PRIu32 ": %s\n", t->name,
		        ev->worker, ev->message ? ev->message : sl_strerror(ev->code));
		return -1;
	case SL_EV_DISCONNECTED:
		fprintf(stderr, "sluice: lost the connection to %s: %s\n", t->server,
		        ev->message ? ev->message : sl_strerror(ev->code));
		return -1;
	case SL_EV_MESSAGES:
		if (t->has_until && ev->time >= t->until)
			t->seen_until = 1;
		if (ev->time >= t->from && (!t->has_until || ev->time < t->until) &&
		    ev->collection <= SL_ERR) {
			sl_iter_init(&it, ev);
			while (sl_iter_update(&it, &row, &diff) == 1) {
				if (t->consolidate) {
					if (ctable_add(&t->table, (uint8_t)ev->collection, ev->worker, row, diff) != 0) {
						fprintf(stderr, "sluice: out of memory\n");
						return -1;
					}
					continue;
				}
				cli_out_str(&t->out, names[ev->collection]);
				cli_out_u64(&t->out, ev->time);
				cli_out_char(&t->out, '\t');
				cli_out_i64(&t->out, diff);
				cli_out_char(&t->out, '\t');
				cli_out_escaped(&t->out, row.ptr, row.len);
				cli_out_char(&t->out, '\n');
			}
		}
		break;
	case SL_EV_PROGRESS:
		break;
	case SL_EV_RESNAPSHOT:
		/* Storage compacted this worker's history past where we stood (possible only when a
		 * restart let compaction run before we were back): it re-sends the worker from a
		 * snapshot at ev->since.  The consolidated result stays exact; a streamed output can
		 * only say so. */
		if (t->consolidate)
			ctable_drop_worker(&t->table, ev->worker);
		else
			fprintf(stderr, "sluice: history of %s worker %" PRIu32 " before %" PRIu64
			        " was compacted while disconnected: it restarts from a snapshot at that time\n",
			        t->name, ev->worker, ev->since);
		return 0;
	default:
		return 0;
	}

	if (ev->worker < t->workers && ev->frontier > t->frontier[ev->worker])
		t->frontier[ev->worker] = ev->frontier;
	m = tail_min_frontier(t);
	if (m <= t->shown)
		return 0;
	/* A frontier may jump from below --until straight to closed (a replay of a closed source,
	 * or a batch that ends it).  If updates at or after --until arrived, the source was open
	 * there: --until was reached first, as a live run would have seen it. */
	if (m == SL_TIME_CLOSED && !t->seen_until) {
		t->shown = m;
		if (t->progress && !t->consolidate)
			cli_out_str(&t->out, "progress\tclosed\n");
		return 1;
	}
	if (t->has_until && m >= t->until) {
		if (t->progress && !t->consolidate && t->shown < t->until) {
			cli_out_str(&t->out, "progress\t");
			cli_out_u64(&t->out, t->until);
			cli_out_char(&t->out, '\n');
		}
		t->shown = m;
		return 1;
	}
	t->shown = m;
	if (t->progress && !t->consolidate) {
		cli_out_str(&t->out, "progress\t");
		cli_out_u64(&t->out, m);
		cli_out_char(&t->out, '\n');
	}
	return 0;
}

int cli_tail(int argc, char **argv)
{
	static const cli_opt opts[] = {
		{"server", 1},   {"from", 1},        {"until", 1}, {"progress", 0},
		{"consolidate", 0}, {"retry-for", 1}, {"help", 0}, CLI_SECURITY_OPTS, {NULL, 0},
	};
	tail t;
	const cli_opt *opt;
	const char *val;
	char err[256];
	cli_args a;
	sl_client *c = NULL;
	sl_queue *q = NULL;
	sl_source_info *infos = NULL, *src;
	size_t ninfos = 0;
	sl_event ev;
	sl_sub sub;
	uint64_t dataflow;
	sigset_t sigs;
	struct pollfd pfd[2];
	struct signalfd_siginfo si;
	uint32_t w, retry_for_ms = 30000;
	int k, rc, status = 0, done = 0, n;

	memset(&t, 0, sizeof(t));
	t.server = CLI_DEFAULT_SERVER;
	cli_args_init(&a, argc, argv, 2);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END) {
		if (k == CLI_BAD)
			return cli_bad_args("tail", err);
		if (k == CLI_POSITIONAL) {
			if (t.name != NULL) {
				snprintf(err, sizeof(err), "unexpected argument '%s'", val);
				return cli_bad_args("tail", err);
			}
			t.name = val;
		} else if (strcmp(opt->name, "help") == 0) {
			fputs(usage_tail, stdout);
			return 0;
		} else if (cli_security_opt(&cli_sec, opt->name, val)) {
			/* stored */
		} else if (strcmp(opt->name, "server") == 0) {
			t.server = val;
		} else if (strcmp(opt->name, "from") == 0) {
			if (cli_parse_u64(val, &t.from) != 0 || t.from == SL_TIME_CLOSED) {
				snprintf(err, sizeof(err), "--from %s is not a time", val);
				return cli_bad_args("tail", err);
			}
		} else if (strcmp(opt->name, "until") == 0) {
			if (cli_parse_u64(val, &t.until) != 0 || t.until == SL_TIME_CLOSED) {
				snprintf(err, sizeof(err), "--until %s is not a time", val);
				return cli_bad_args("tail", err);
			}
			t.has_until = 1;
		} else if (strcmp(opt->name, "progress") == 0) {
			t.progress = 1;
		} else if (strcmp(opt->name, "consolidate") == 0) {
			t.consolidate = 1;
		} else if (strcmp(opt->name, "retry-for") == 0) {
			char *end;
			double sec = strtod(val, &end);

			if (end == val || *end != '\0' || !(sec >= 0) || sec > 4000000.0) {
				snprintf(err, sizeof(err), "--retry-for %s is not a number of seconds", val);
				return cli_bad_args("tail", err);
			}
			retry_for_ms = (uint32_t)(sec * 1000.0 + 0.5);
		}
	}
	if (t.name == NULL)
		return cli_bad_args("tail", "missing SOURCE");
	if (cli_check_server_list(t.server) != 0) {
		snprintf(err, sizeof(err), "bad --server address '%s': expected HOST:PORT", t.server);
		return cli_bad_args("tail", err);
	}

	/* Block the signals before the runtime thread exists, so only the signalfd sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if ((pfd[1].fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		fprintf(stderr, "sluice: signalfd: %s\n", strerror(errno));
		return 1;
	}
	if (cli_out_init(&t.out, STDOUT_FILENO, OUT_BUF) != 0) {
		fprintf(stderr, "sluice: out of memory\n");
		return 1;
	}

	if (cli_connect_retry(t.server, retry_for_ms, &c) != 0) {
		status = 1;
		goto out;
	}
	if (cli_find_source(c, t.server, t.name, &infos, &ninfos, &src) != 0) {
		status = 1;
		goto out;
	}
	t.workers = src->workers;
	if (t.has_until && t.until == 0)
		goto out; /* every frontier is >= 0: nothing to wait for */
	if ((t.frontier = calloc(t.workers ? t.workers : 1, sizeof(*t.frontier))) == NULL ||
	    (rc = sl_queue_open(c, &q)) != 0) {
		fprintf(stderr, "sluice: cannot open a queue: %s\n",
		        sl_strerror(t.frontier ? rc : SL_ENOMEM));
		status = 1;
		goto out;
	}
	dataflow = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ cli_now_ms();
	for (w = 0; w < t.workers; w++) {
		if ((rc = sl_subscribe(q, dataflow, src->id, w, t.from, &sub)) != 0) {
			fprintf(stderr, "sluice: cannot subscribe to %s worker %" PRIu32 ": %s\n", t.name,
			        w, sl_strerror(rc));
			status = 1;
			goto out;
		}
	}
	if (t.workers == 0)
		done = 1;

	pfd[0].fd = sl_queue_fd(q);
	pfd[0].events = POLLIN;
	pfd[1].events = POLLIN;
	while (!done) {
		for (n = 0; n < DRAIN_MAX && !done; n++) {
			rc = sl_queue_next(q, &ev, 0);
			if (rc == 0)
				break;
			if (rc < 0) {
				fprintf(stderr, "sluice: %s\n", sl_strerror(rc));
				status = 1;
				goto out;
			}
			if ((rc = tail_event(&t, &ev)) < 0) {
				status = 1;
				goto out;
			}
			done = rc;
		}
		if (done)
			break;
		if (!t.consolidate && cli_out_flush(&t.out) != 0)
			goto out;
		if (poll(pfd, 2, n == DRAIN_MAX ? 0 : 1000) < 0 && errno != EINTR) {
			fprintf(stderr, "sluice: poll: %s\n", strerror(errno));
			status = 1;
			goto out;
		}
		if (pfd[1].revents & POLLIN) {
			if (read(pfd[1].fd, &si, sizeof(si)) > 0)
				break;
		}
	}
	if (t.consolidate && ctable_print(&t.table, &t.out) != 0) {
		fprintf(stderr, "sluice: out of memory\n");
		status = 1;
	}

out:
	rc = cli_out_fini(&t.out);
	if (status == 0)
		status = cli_out_status(rc);
	sl_queue_close(q);
	sl_client_close(c);
	sl_source_info_free(infos, ninfos);
	ctable_fini(&t.table);
	free(t.frontier);
	close(pfd[1].fd);
	return status;
}
