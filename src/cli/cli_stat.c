/*
 * cli_stat.c - `sluice stat [--server HOST:PORT] [--once] [--interval S]`: the operator's view
 * of a storage process (or of the whole cluster it belongs to), fitting an 80-column terminal.
 *
 * Each refresh is one short conversation on a fresh connection: Hello, ClusterMap and
 * StatsRequest, answered by Hello, Cluster and the Stats frame (the server's report in the
 * Prometheus text format, the same text its GET /metrics serves) or an Error, within a
 * deadline; then Hello and StatsRequest to every other process the map names (cli_stat_fetch.c).
 * The reports are parsed into samples (cli_stat_report.c) and printed as tables: totals,
 * sources (per worker, or one summary row per source with many workers), connections, and
 * subscriptions with their lag (cli_stat_text.c); or as one JSON document (cli_stat_json.c).
 * Exit status:
 * 0; 1 when the server cannot be reached or answers with an error (or, with --once, when a
 * process of its cluster does not answer); 2 for bad arguments.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_stat.h"

static const char usage_stat[] =
	"usage: sluice stat [--server HOST:PORT] [--once] [--interval S] [--json]\n"
	"                   [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--auth-token-file FILE]\n"
	"\n"
	"Shows what a storage process (and every other process of its cluster) is\n"
	"doing, refreshed every S seconds until interrupted: connections, bytes and\n"
	"frames in and out, every source's upper and since (per worker, or summarized\n"
	"for sources of more than 4 workers: lowest and highest), every connection,\n"
	"and every subscription's lag (the worker's upper minus the frontier the\n"
	"subscription was sent), most lagging first.\n"
	"\n"
	"  --server HOST:PORT   a storage process (default 127.0.0.1:6876)\n"
	"  --once               print once and exit (for scripts)\n"
	"  --interval S         seconds between refreshes (default 1; fractions allowed)\n"
	"  --json               print the view once as one JSON document (fields: sluice(1))\n"
	CLI_SECURITY_HELP;

/* ---- the command ---- */

static volatile sig_atomic_t stop_flag;
static void on_stop(int sig)
{
	stop_flag = 1;
}

int cli_stat(int argc, char **argv)
{
	static const cli_opt opts[] = {{"server", 1}, {"once", 0}, {"interval", 1}, {"help", 0}, {"json", 0},
	                               CLI_SECURITY_OPTS, {NULL, 0}};
	const char *server = "127.0.0.1:6876", *val;
	const cli_opt *opt;
	char err[512];
	double interval = 1.0;
	int once = 0, json = 0, k, status = 0;
	cli_args a;

	cli_args_init(&a, argc, argv, 2);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END) {
		if (k == CLI_BAD) {
			fprintf(stderr, "sluice: %s (see sluice stat --help)\n", err);
			return 2;
		}
		if (k == CLI_POSITIONAL) {
			fprintf(stderr, "sluice: unexpected argument '%s' (see sluice stat --help)\n", val);
			return 2;
		}
		if (strcmp(opt->name, "help") == 0) {
			fputs(usage_stat, stdout);
			return 0;
		} else if (strcmp(opt->name, "once") == 0) {
			once = 1;
		} else if (strcmp(opt->name, "json") == 0) {
			once = json = 1;
		} else if (strcmp(opt->name, "interval") == 0) {
			char *end;
			errno = 0;
			interval = strtod(val, &end);
			if (errno != 0 || end == val || *end != '\0' || !(interval >= 0.05 && interval <= 86400)) {
				fprintf(stderr, "sluice: bad --interval '%s': expected seconds from 0.05 to 86400 "
				        "(see sluice stat --help)\n", val);
				return 2;
			}
		} else if (!cli_security_opt(&cli_sec, opt->name, val)) {
			server = val;
		}
	}
	if (cli_check_hostport(server) != 0) {
		fprintf(stderr, "sluice: bad --server address '%s': expected HOST:PORT (see sluice stat "
		        "--help)\n", server);
		return 2;
	}
	if (cli_security_load(&cli_sec, err, sizeof(err)) != 0) {
		fprintf(stderr, "sluice: %s\n", err);
		return 1;
	}
	int tty = isatty(1);
	struct sigaction sa = {0};
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (int first = 1; !stop_flag; first = 0) {
		struct cmap map = {0};
		view v;
		int missing = 0;
		int rc = stat_view_fetch(server, &v, &map, &missing, err, sizeof(err));
		if (rc != 0) {
			/* A refresh that fails is shown and retried; the first (or --once) ends it. */
			fprintf(stderr, "sluice: %s\n", err);
			stat_cmap_fini(&map);
			if (once || first) {
				status = 1;
				break;
			}
		} else {
			if (tty && !once)
				fputs("\033[H\033[2J", stdout);
			else if (!first)
				fputs("\n", stdout);
			rc = json ? stat_print_json(server, &v) : stat_print_view(server, &v);
			for (size_t p = 0; once && p < v.n; p++)
				if (v.texts[p] == NULL)
					fprintf(stderr, "sluice: process %zu at %s: %s\n", p, v.addrs[p], v.errs[p]);
			if (once && missing > 0)
				status = 1;
			stat_view_fini(&v);
			stat_cmap_fini(&map);
			if (rc != 0) {
				fprintf(stderr, "sluice: out of memory\n");
				status = 1;
				break;
			}
		}
		if (fflush(stdout) != 0) {
			status = 1;
			break;
		}
		if (once)
			break;
		struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
		while (!stop_flag && nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	cli_security_fini(&cli_sec);
	return status;
}
