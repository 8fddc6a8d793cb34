/*
 * sluiced.c - the storage server: a libsluice storage runtime hosting built-in sources.
 *
 *   sluiced [--listen HOST:PORT] [--data-dir DIR] [--source SPEC]... [--cluster ADDR,... --process I]
 *           [--fsync always|interval|never] [--segment-size BYTES] [--retain T] [limit flags]
 *   sluiced --standby-of ADDR [--listen HOST:PORT] [--data-dir DIR] ...
 *
 * Startup order matters to clients: sources are registered before the network thread starts
 * and before the "listening on" line is printed, so a client that waits for that line never
 * sees a source missing.  SIGINT and SIGTERM are blocked in every thread and taken by sigwait in
 * the main thread: then the sources stop, the runtime closes and the exit status is 0.
 * Bad arguments: one line on stderr, exit status 2.  A failure to start: exit status 1.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sluice/storage.h"
#include "sources/sources.h"

#define DEFAULT_LISTEN "127.0.0.1:6876"
#define DEFAULT_DATA_DIR "./sluice-data"
#define MAX_CLUSTER 256

static const char usage[] =
	"usage: sluiced [--listen HOST:PORT] [--data-dir DIR] [--source SPEC]...\n"
	"               [--cluster ADDR,ADDR,... --process I]\n"
	"\n"
	"Runs a sluice storage server hosting the given sources.\n"
	"\n"
	"  --listen HOST:PORT   address to listen on (default " DEFAULT_LISTEN "; port 0 picks a\n"
	"                       free port, shown in the \"listening on\" line)\n"
	"  --data-dir DIR       where the durable logs live (default " DEFAULT_DATA_DIR ")\n"
	"  --fsync MODE         when logs are forced to disk: always (before every frontier is\n"
	"                       published: survives a machine crash), interval (every second:\n"
	"                       a machine crash loses at most the last second; default), never\n"
	"                       (the kernel decides).  Every mode survives a crash of sluiced.\n"
	"  --segment-size BYTES size of each log segment file, a power of two from 131072\n"
	"                       (default 16777216); a data directory keeps the size it was made with\n"
	"  --retain T           keep full history for the last T time units of each worker;\n"
	"                       before that, consolidate (default 0: keep everything)\n"
	"  --source SPEC        host a source; SPEC is NAME=KIND[,key=value...]:\n"
	"                         NAME=counter[,workers=W][,max=N][,keep=K][,rate=R][,errors=E]\n"
	"                         NAME=file,path=P[,format=text|csv][,columns=C][,workers=W]\n"
	"                         NAME=ingest[,workers=W]\n"
	"  --cluster ADDR,...   the addresses of every process of a storage cluster\n"
	"  --process I          which address of --cluster is this process (0-based)\n"
	"  --standby-of ADDR    run a standby of the (lone) storage process at ADDR: follow it into\n"
	"                       this data directory and serve reads; ingest is refused until\n"
	"                       'sluice promote' makes it the primary.  Takes no --source\n"
	"  --help               show this help\n"
	"\n"
	"Limits (see README.md, \"Limits\"):\n"
	"  --max-connections N  connections beyond N are told so and closed (default 1024)\n"
	"  --max-subscriptions N live subscriptions per connection (default 65536)\n"
	"  --max-subscribe-rate N[/s]  Subscribe+Unsubscribe per second per connection; beyond it\n"
	"                       and the burst, the connection is closed (default 10000)\n"
	"  --subscribe-burst N  requests allowed at once before the rate applies (default:\n"
	"                       --max-subscriptions)\n"
	"  --handshake-timeout MS  close a connection with no valid Hello after MS ms (default 5000)\n"
	"  --idle-timeout MS    close a connection silent for MS ms, from 2000 (default 10000)\n"
	"  --max-frame BYTES    largest frame accepted or sent (default 4194304)\n"
	"  --max-output BYTES   close a connection with more unsent output (default 67108864)\n"
	"  --max-batch-bytes BYTES  largest ingest batch (default 268435456)\n"
	"  --max-batch-rows N   most updates in one ingest batch (default 4194304)\n"
	"  --max-row BYTES      largest row in an ingest batch (default and maximum 65472)\n";

static int bad_args(const char *fmt, const char *arg)
{
	fprintf(stderr, "sluiced: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see sluiced --help)\n");
	return 2;
}

/* mkdir -p.  0 or -errno. */
static int make_dirs(const char *path)
{
	char buf[4096];
	size_t n = strlen(path), i;
	struct stat sb;

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	if (stat(path, &sb) != 0)
		return -errno;
	if (!S_ISDIR(sb.st_mode))
		return -ENOTDIR;
	return 0;
}

static uint64_t fnv1a(uint64_t h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static void print_notice(void *arg, const char *msg)
{
	fprintf(stderr, "sluiced: %s\n", msg);
}

static int run(int argc, char **argv, const char **specs, sli_source_runner **runners)
{
	static const cli_opt opts[] = {
		{"listen", 1}, {"data-dir", 1}, {"source", 1}, {"cluster", 1}, {"process", 1},
		{"fsync", 1},  {"segment-size", 1}, {"retain", 1}, {"standby-of", 1}, {"help", 0},
		CLI_LIMIT_OPTS, {NULL, 0},
	};
	const char *listen = NULL, *data_dir = DEFAULT_DATA_DIR, *cluster = NULL, *process = NULL;
	const char *standby_of = NULL;
	sl_fsync_mode fsync_mode = SL_FSYNC_INTERVAL;
	uint64_t segment_size = 0, retain = 0;
	const char *val;
	const cli_opt *opt;
	char err[512], *addrs[MAX_CLUSTER], cluster_buf[8192], *p;
	size_t nspecs = 0, naddrs = 0, i;
	uint64_t proc_index = 0;
	sl_storage_config cfg;
	sl_storage *st;
	sigset_t sigs;
	cli_args a;
	int rc, sig, status = 0, k;
	const char *colon;

	sl_storage_config_init(&cfg); /* the limit flags write into it */
	cli_args_init(&a, argc, argv, 1);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END) {
		if (k == CLI_BAD)
			return bad_args("%s", err);
		if (k == CLI_POSITIONAL)
			return bad_args("unexpected argument '%s'", val);
		if ((k = cli_limit_option(opt->name, val, &cfg, err, sizeof(err))) != 0) {
			if (k < 0)
				return bad_args("%s", err);
		} else if (strcmp(opt->name, "help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(opt->name, "listen") == 0) {
			listen = val;
		} else if (strcmp(opt->name, "data-dir") == 0) {
			data_dir = val;
		} else if (strcmp(opt->name, "source") == 0) {
			specs[nspecs++] = val;
		} else if (strcmp(opt->name, "cluster") == 0) {
			cluster = val;
		} else if (strcmp(opt->name, "process") == 0) {
			process = val;
		} else if (strcmp(opt->name, "standby-of") == 0) {
			standby_of = val;
		} else if (strcmp(opt->name, "fsync") == 0) {
			if (strcmp(val, "always") == 0)
				fsync_mode = SL_FSYNC_ALWAYS;
			else if (strcmp(val, "interval") == 0)
				fsync_mode = SL_FSYNC_INTERVAL;
			else if (strcmp(val, "never") == 0)
				fsync_mode = SL_FSYNC_NEVER;
			else
				return bad_args("bad --fsync '%s': expected always, interval or never", val);
		} else if (strcmp(opt->name, "retain") == 0) {
			if (cli_parse_u64(val, &retain) != 0)
				return bad_args("bad --retain '%s': expected a number of time units", val);
		} else if (strcmp(opt->name, "segment-size") == 0) {
			if (cli_parse_u64(val, &segment_size) != 0 || segment_size < (128u << 10) ||
			    segment_size > (1u << 30) || (segment_size & (segment_size - 1)) != 0)
				return bad_args("bad --segment-size '%s': expected a power of two from 131072 to 1073741824", val);
		}
	}

	if (listen != NULL && cli_check_hostport(listen) != 0)
		return bad_args("bad --listen address '%s': expected HOST:PORT", listen);
	if (*data_dir == '\0')
		return bad_args("%s", "--data-dir must not be empty");
	if (standby_of != NULL && cli_check_hostport(standby_of) != 0)
		return bad_args("bad --standby-of address '%s': expected HOST:PORT", standby_of);
	if (standby_of != NULL && nspecs > 0)
		return bad_args("%s", "--standby-of takes no --source: a standby hosts its primary's sources");
	if (standby_of != NULL && cluster != NULL)
		return bad_args("%s", "--standby-of and --cluster do not go together (a standby of a cluster process is not supported yet)");
	if ((cluster == NULL) != (process == NULL))
		return bad_args("%s", "--cluster and --process go together");
	if (cluster != NULL) {
		if (strlen(cluster) >= sizeof(cluster_buf))
			return bad_args("%s", "--cluster list too long");
		strcpy(cluster_buf, cluster);
		for (p = strtok(cluster_buf, ","); p != NULL; p = strtok(NULL, ",")) {
			if (naddrs == MAX_CLUSTER)
				return bad_args("%s", "--cluster lists too many addresses");
			if (cli_check_hostport(p) != 0)
				return bad_args("bad --cluster address '%s': expected HOST:PORT", p);
			addrs[naddrs++] = p;
		}
		if (naddrs == 0)
			return bad_args("%s", "--cluster needs at least one address");
		if (cli_parse_u64(process, &proc_index) != 0 || proc_index >= naddrs) {
			snprintf(err, sizeof(err), "--process %s is not in 0..%zu", process, naddrs - 1);
			return bad_args("%s", err);
		}
		if (listen == NULL)
			listen = addrs[proc_index];
	}
	if (listen == NULL)
		listen = DEFAULT_LISTEN;

	/* Every thread started from here on inherits the blocked signals; sigwait takes them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((rc = make_dirs(data_dir)) != 0) {
		fprintf(stderr, "sluiced: cannot create data directory %s: %s\n", data_dir,
		        sl_strerror(rc));
		return 1;
	}

	if (cfg.max_output < 4 * cfg.out_high_water + cfg.max_frame) {
		snprintf(err, sizeof(err), "--max-output %zu is below 4 MiB plus --max-frame (%u)",
		         cfg.max_output, cfg.max_frame);
		return bad_args("%s", err);
	}
	if (cli_raise_nofile(cfg.max_connections, err, sizeof(err)) == 1)
		fprintf(stderr, "sluiced: %s\n", err);
	cfg.listen = listen;
	cfg.data_dir = data_dir;
	cfg.fsync = fsync_mode;
	cfg.segment_size = segment_size;
	cfg.retain = retain;
	cfg.warn = print_notice;
	if ((rc = sl_storage_open(&cfg, &st)) != 0) {
		fprintf(stderr, "sluiced: %s\n",
		        sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
		return 1;
	}
	if (cluster != NULL) {
		/* Every process of one cluster has the same list and the same specs, so the same
		 * fingerprint: clients refuse to mix processes whose fingerprints differ. */
		uint64_t fp = fnv1a(1469598103934665603ull, cluster, strlen(cluster));
		for (i = 0; i < nspecs; i++)
			fp = fnv1a(fp ^ 0xff, specs[i], strlen(specs[i]));
		if ((rc = sl_storage_set_cluster(st, (const char *const *)addrs, (uint32_t)naddrs,
		                                 (uint32_t)proc_index, fp)) != 0) {
			fprintf(stderr, "sluiced: cannot join the cluster: %s\n", sl_strerror(rc));
			status = 1;
			goto out_stop;
		}
	}
	for (i = 0; i < nspecs; i++) {
		if ((rc = sli_source_start(st, specs[i], &runners[i], err, sizeof(err))) != 0) {
			fprintf(stderr, "sluiced: %s\n", err);
			status = (rc == SL_EARG || rc == SL_EDUPLICATE) ? 2 : 1;
			goto out_stop;
		}
	}
	if (standby_of != NULL && (rc = sl_storage_follow(st, standby_of)) != 0) {
		fprintf(stderr, "sluiced: cannot be a standby of %s: %s\n", standby_of,
		        sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
		status = 1;
		goto out_stop;
	}
	if ((rc = sl_storage_start(st)) != 0) {
		fprintf(stderr, "sluiced: cannot start the storage runtime: %s\n", sl_strerror(rc));
		status = 1;
		goto out_stop;
	}
	colon = strrchr(listen, ':');
	if (colon == listen)
		fprintf(stderr, "sluiced: listening on 0.0.0.0:%d\n", sl_storage_port(st));
	else
		fprintf(stderr, "sluiced: listening on %.*s:%d\n", (int)(colon - listen), listen,
		        sl_storage_port(st));

	do {
		rc = sigwait(&sigs, &sig);
	} while (rc != 0 && rc == EINTR);

out_stop:
	for (i = 0; i < nspecs; i++)
		sli_source_stop(runners[i]);
	sl_storage_close(st);
	return status;
}

int main(int argc, char **argv)
{
	const char **specs = calloc((size_t)argc + 1, sizeof(*specs));
	sli_source_runner **runners = calloc((size_t)argc + 1, sizeof(*runners));
	int status;

	if (specs == NULL || runners == NULL) {
		fprintf(stderr, "sluiced: out of memory\n");
		status = 1;
	} else {
		status = run(argc, argv, specs, runners);
	}
	free(runners);
	free(specs);
	return status;
}
