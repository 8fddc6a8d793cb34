/*
 * cli_ingest.c - `sluice ingest`: reads a batch of rows (or DIFF<TAB>ROW updates) from stdin,
 * checks every line before anything is sent, and appends it to an ingest source as one atomic
 * batch.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sluice/compute.h"

static const char usage_ingest[] =
	"usage: sluice ingest [--server HOST:PORT] [--updates] [--tls-ca FILE [--tls-cert FILE\n"
	"                     --tls-key FILE]] [--auth-token-file FILE] SOURCE\n"
	"       sluice ingest [--server HOST:PORT] [--updates] --stream [--batch-rows N]\n"
	"                     [--batch-bytes B] [--linger-ms MS] [--inflight K] SOURCE\n"
	"\n"
	"Reads stdin and appends it to the ingest source SOURCE as one atomic batch: one row per line\n"
	"(diff +1), or with --updates lines 'DIFF<TAB>ROW' (DIFF a non-zero integer).  Rows use the\n"
	"escapes \\t, \\n, \\\\.  Prints the time storage gave the batch.  Any bad line rejects the\n"
	"whole batch: 'line L: reason' on stderr, exit status 1.\n"
	"\n"
	"  --server HOST:PORT   storage server (default " CLI_DEFAULT_SERVER "); a comma-separated list\n"
	"                       names a primary and its standbys: the one with the highest term is used\n"
	"  --updates            read DIFF<TAB>ROW lines\n"
	"  --stream             read stdin as it arrives and commit it in batches, up to K in flight;\n"
	"                       print each batch's time, in input order, as it is acknowledged.  A\n"
	"                       bad line: the batches before it are committed and printed, the one\n"
	"                       holding it and the rest are not ('line L: reason', exit status 1)\n"
	"  --batch-rows N       with --stream: cut a batch at N rows (default 65536)\n"
	"  --batch-bytes B      with --stream: ... or at B bytes (default 8388608)\n"
	"  --linger-ms MS       with --stream: ... or MS ms after its first row (default 10)\n"
	"  --inflight K         with --stream: batches in flight at once (default 8, at most 1024)\n"
	CLI_SECURITY_HELP;

#define MIB (1024.0 * 1024.0)

/* Reads all of fd.  0 with *buf (malloc'd, one spare byte) and *len, or -errno. */
static int read_all(int fd, char **buf, size_t *len, cli_progress *pr)
{
	size_t cap = 1u << 16, n = 0;
	char *b = malloc(cap), *nb;
	ssize_t got;

	if (b == NULL)
		return -ENOMEM;
	for (;;) {
		if (cap - n < 4096) {
			if ((nb = realloc(b, cap * 2)) == NULL) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
		got = read(fd, b + n, cap - n - 1);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			free(b);
			return -errno;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (cli_progress_due(pr, 0)) {
			char line[64];
			snprintf(line, sizeof(line), "read %.1f MiB", (double)n / MIB);
			cli_progress_draw(pr, line);
		}
	}
	*buf = b;
	*len = n;
	return 0;
}

int cli_ingest_line(char *p, size_t len, int updates, size_t lineno, sl_update *up)
{
	char *row = p, *tab, why[128];
	size_t rowlen = len;
	ssize_t ulen;
	int64_t diff = 1;

	if (updates) {
		tab = memchr(p, '\t', len);
		if (tab == NULL) {
			fprintf(stderr, "line %zu: expected DIFF<TAB>ROW\n", lineno);
			return -1;
		}
		if (cli_parse_i64(p, (size_t)(tab - p), &diff) != 0) {
			fprintf(stderr, "line %zu: bad diff '%.*s' (expected a 64-bit integer)\n",
			        lineno, (int)((tab - p) > 32 ? 32 : (tab - p)), p);
			return -1;
		}
		if (diff == 0) {
			fprintf(stderr, "line %zu: diff must not be 0\n", lineno);
			return -1;
		}
		row = tab + 1;
		rowlen = (size_t)(p + len - row);
	}
	if ((ulen = cli_unescape(row, rowlen, why, sizeof(why))) < 0) {
		fprintf(stderr, "line %zu: %s\n", lineno, why);
		return -1;
	}
	if ((size_t)ulen > SL_ROW_MAX) {
		fprintf(stderr, "line %zu: row longer than %u bytes\n", lineno, SL_ROW_MAX);
		return -1;
	}
	up->row.ptr = (const uint8_t *)row;
	up->row.len = (size_t)ulen;
	up->time = 0;
	up->diff = diff;
	return 0;
}

/* Parses the batch in place.  0 with *ups / *n, or -1 after printing "line L: reason". */
static int parse_batch(char *buf, size_t len, int updates, sl_update **ups_out, size_t *n_out)
{
	size_t cap = 1024, n = 0, lineno = 0;
	sl_update *ups = malloc(cap * sizeof(*ups)), *nu;
	char *p = buf, *end = buf + len, *nl;

	if (ups == NULL) {
		fprintf(stderr, "sluice: out of memory\n");
		return -1;
	}
	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (n == cap) {
			if ((nu = realloc(ups, cap * 2 * sizeof(*ups))) == NULL) {
				fprintf(stderr, "sluice: out of memory\n");
				goto err;
			}
			ups = nu;
			cap *= 2;
		}
		if (cli_ingest_line(p, (size_t)(nl - p), updates, lineno, &ups[n]) != 0)
			goto err;
		n++;
		p = nl + 1;
	}
	*ups_out = ups;
	*n_out = n;
	return 0;
err:
	free(ups);
	return -1;
}

/* One of --stream's numeric options into cfg: 0, or -1 with err set. */
static int stream_option(sl_producer_config *cfg, const char *name, const char *val, char *err,
                         size_t errlen)
{
	uint64_t v;
	uint64_t max = strcmp(name, "batch-bytes") == 0 ? (1ull << 30)
	               : strcmp(name, "inflight") == 0  ? 1024
	               : strcmp(name, "linger-ms") == 0 ? 3600000
	                                                : UINT32_MAX;
	if (cli_parse_u64(val, &v) != 0 || v == 0 || v > max) {
		snprintf(err, errlen, "bad --%s '%s': expected an integer from 1 to %llu", name, val,
		         (unsigned long long)max);
		return -1;
	}
	if (strcmp(name, "batch-rows") == 0)
		cfg->batch_rows = (uint32_t)v;
	else if (strcmp(name, "batch-bytes") == 0)
		cfg->batch_bytes = v;
	else if (strcmp(name, "linger-ms") == 0)
		cfg->linger_ms = (uint32_t)v;
	else
		cfg->inflight = (uint32_t)v;
	return 0;
}

int cli_ingest(int argc, char **argv)
{
	static const cli_opt opts[] = {{"server", 1}, {"updates", 0}, {"help", 0},
	                               {"stream", 0}, {"batch-rows", 1}, {"batch-bytes", 1},
	                               {"linger-ms", 1}, {"inflight", 1}, CLI_SECURITY_OPTS,
	                               {NULL, 0}};
	const char *server = CLI_DEFAULT_SERVER, *name = NULL, *val;
	const cli_opt *opt;
	char err[256], *buf = NULL;
	cli_args a;
	sl_client *c = NULL;
	sl_source_info *infos = NULL, *src;
	size_t ninfos = 0, len = 0, n = 0;
	sl_update *ups = NULL;
	uint64_t t, t0;
	int k, rc, status = 1, updates = 0, stream = 0, stream_opt = 0;
	sl_producer_config pc;
	cli_progress pr;
	char line[400];

	sl_producer_config_init(&pc);
	cli_args_init(&a, argc, argv, 2);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END) {
		if (k == CLI_BAD)
			return cli_bad_args("ingest", err);
		if (k == CLI_POSITIONAL) {
			if (name != NULL) {
				snprintf(err, sizeof(err), "unexpected argument '%s'", val);
				return cli_bad_args("ingest", err);
			}
			name = val;
		} else if (strcmp(opt->name, "help") == 0) {
			fputs(usage_ingest, stdout);
			return 0;
		} else if (cli_security_opt(&cli_sec, opt->name, val)) {
			/* stored */
		} else if (strcmp(opt->name, "server") == 0) {
			server = val;
		} else if (strcmp(opt->name, "updates") == 0) {
			updates = 1;
		} else if (strcmp(opt->name, "stream") == 0) {
			stream = 1;
		} else if (stream_option(&pc, opt->name, val, err, sizeof(err)) != 0) {
			return cli_bad_args("ingest", err);
		} else {
			stream_opt = 1;
		}
	}
	if (stream_opt && !stream)
		return cli_bad_args("ingest", "--batch-rows, --batch-bytes, --linger-ms and --inflight "
		                    "need --stream");
	if (name == NULL)
		return cli_bad_args("ingest", "missing SOURCE");
	if (cli_check_server_list(server) != 0) {
		snprintf(err, sizeof(err), "bad --server address '%s': expected HOST:PORT", server);
		return cli_bad_args("ingest", err);
	}

	if (stream) {
		if (cli_connect(server, &c) != 0 ||
		    cli_find_source(c, server, name, &infos, &ninfos, &src) != 0)
			goto out;
		status = cli_ingest_stream(c, src->id, updates, &pc);
		goto out;
	}
	/* The whole batch is checked before anything is sent: a bad line means nothing is sent. */
	cli_progress_init(&pr);
	if ((rc = read_all(STDIN_FILENO, &buf, &len, &pr)) != 0) {
		cli_progress_end(&pr);
		fprintf(stderr, "sluice: cannot read stdin: %s\n", sl_strerror(rc));
		return 1;
	}
	if (parse_batch(buf, len, updates, &ups, &n) != 0) {
		cli_progress_end(&pr);
		goto out;
	}
	cli_progress_end(&pr); /* the connection's errors go on a line of their own */
	if (cli_connect(server, &c) != 0)
		goto out;
	if (cli_find_source(c, server, name, &infos, &ninfos, &src) != 0)
		goto out;
	if (cli_progress_due(&pr, 1)) {
		snprintf(line, sizeof(line), "sending %zu rows, %.1f MiB, to %s ...", n,
		         (double)len / MIB, name);
		cli_progress_draw(&pr, line);
	}
	t0 = cli_now_ms();
	rc = sl_client_append(c, src->id, ups, n, CLI_REQUEST_TIMEOUT_MS, &t);
	if (rc == 0 && cli_progress_due(&pr, 1)) {
		snprintf(line, sizeof(line), "sent %zu rows, %.1f MiB, in %.1f s", n, (double)len / MIB,
		         (double)(cli_now_ms() - t0) / 1000.0);
		cli_progress_draw(&pr, line);
	}
	cli_progress_end(&pr);
	if (rc == SL_EKIND) {
		fprintf(stderr, "sluice: source %s is not an ingest source\n", name);
	} else if (rc == SL_EREJECTED) {
		const char *msg = sl_client_last_error();

		fprintf(stderr, "sluice: batch rejected: %s\n",
		        msg && *msg ? msg : sl_strerror(rc));
	} else if (rc != 0) {
		/* storage's reason when it gave one (a server limit: row size, batch size) */
		const char *msg = sl_client_last_error();

		fprintf(stderr, "sluice: cannot ingest into %s: %s\n", name,
		        msg && *msg ? msg : sl_strerror(rc));
	} else {
		printf("%" PRIu64 "\n", t);
		status = fflush(stdout) == 0 ? 0 : 1;
	}
out:
	sl_source_info_free(infos, ninfos);
	sl_client_close(c);
	free(ups);
	free(buf);
	return status;
}
