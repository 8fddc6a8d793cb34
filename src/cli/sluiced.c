/*
 * sluiced.c - the storage server: a libsluice storage runtime hosting built-in sources.
 *
 *   sluiced [--listen HOST:PORT] [--data-dir DIR] [--source SPEC]... [--cluster ADDR,... --process I]
 *           [--fsync always|interval|never] [--segment-size BYTES] [--retain T] [limit flags]
 *           [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [--tls-ca FILE]
 *           [--auth-token-file FILE]
 *           [--metrics-listen HOST:PORT] [--log-level LEVEL] [--log-format text|json]
 *   sluiced --standby-of ADDR [--listen HOST:PORT] [--data-dir DIR] ...
 *
 * Startup order matters to clients: sources are registered before the network thread starts
 * and before the "listening on" line is printed, so a client that waits for that line never
 * sees a source missing.  SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by
 * the main thread (sluiced_service.c): on SIGINT or SIGTERM the sources stop, the runtime
 * closes and the exit status is 0; SIGHUP reopens --log-file.  Under a service manager
 * (NOTIFY_SOCKET), READY=1 is sent right after the "listening on" line (cli_notify.c).
 * Bad arguments: one line on stderr, exit status 2.  A failure to start: exit status 1.
 * Everything else sluiced says goes through the event log (src/common/log.h) on stderr: text
 * lines "sluiced: ..." by default (the "listening on" line is one, exactly as scripts expect
 * it), or JSON objects with --log-format json.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sluiced.h"
#include "common/log.h"
#include "net/tls.h"
#include "sluice/storage.h"
#include "sources/sources.h"

#define DEFAULT_LISTEN "127.0.0.1:6876"
#define DEFAULT_DATA_DIR "./sluice-data"
#define MAX_CLUSTER 256

static const char usage[] =
	"usage: sluiced [--listen HOST:PORT] [--data-dir DIR] [--source SPEC]...\n"
	"               [--cluster ADDR,ADDR,... --process I] [--standby-of ADDR]\n"
	"               [--etcd ENDPOINTS --cluster LIST --process I [--lease-ms MS]]\n"
	"               [--min-insync N]\n"
	"               [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [--tls-ca FILE]\n"
	"               [--auth-token-file FILE]\n"
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
	"                         NAME=postgres,conninfo=C,publication=P[,slot=S][,workers=W]\n"
	"                           (C: libpq 'key=value ...', no comma; quote the argument)\n"
	"  --cluster ADDR,...   the addresses of every process of a storage cluster; an entry\n"
	"                       PRIMARY/STANDBY/... also names that process's standbys, so\n"
	"                       clients fail over to them\n"
	"  --process I          which entry of --cluster is this process (0-based)\n"
	"  --standby-of ADDR    run a standby of the storage process at ADDR: follow it into\n"
	"                       this data directory and serve reads; ingest is refused until\n"
	"                       'sluice promote' makes it the primary.  Takes no --source; with\n"
	"                       --cluster and --process, the primary's (it listens on the first\n"
	"                       address of its entry that is not ADDR)\n"
	"  --etcd ENDPOINTS     decide leadership in etcd (comma-separated client URLs,\n"
	"                       http://127.0.0.1:2379,...): every address of entry I of --cluster\n"
	"                       is a candidate for process I, started with the same flags but its\n"
	"                       own --listen; the leader takes ingest and runs the sources, the\n"
	"                       others follow it as standbys and take over when it dies\n"
	"  --lease-ms MS        with --etcd: the leadership lease (default 3000)\n"
	"  --min-insync N       acknowledge an ingest batch, and publish a time, only once it is\n"
	"                       durable here and on every in-sync standby, and only while at\n"
	"                       least N copies (this one included) are in sync; with fewer,\n"
	"                       ingest is refused and frontiers wait (default 1; with --etcd, 2\n"
	"                       when this process's --cluster entry names a standby)\n"
	"  --tls-cert FILE      with --tls-key: serve TLS only, with this certificate chain (PEM);\n"
	"                       a plaintext client is refused with \"this server requires TLS\"\n"
	"  --tls-key FILE       the private key of --tls-cert (PEM)\n"
	"  --tls-client-ca FILE mutual TLS: clients must present a certificate signed by this CA\n"
	"  --tls-ca FILE        this process's own connections (to its primary, the primary it\n"
	"                       fences, its cluster peers) speak TLS and verify them against this CA,\n"
	"                       presenting --tls-cert/--tls-key when asked\n"
	"  --auth-token-file F  clients must send the token in F (its first line; the file must be\n"
	"                       mode 600); this process's own connections send it too\n"
	"  --metrics-listen HOST:PORT\n"
	"                       serve Prometheus metrics at GET /metrics on this address\n"
	"                       (port 0 picks a free port, shown in the \"metrics on\" line)\n"
	"  --log-level LEVEL    the least severe events logged: error, warn, info\n"
	"                       (default) or debug\n"
	"  --log-format FORMAT  text (\"sluiced: ...\" lines, default) or json (an object\n"
	"                       per line)\n"
	"  --log-file PATH      write the log to PATH (appending) instead of stderr; SIGHUP\n"
	"                       reopens it, so a rotated file is replaced by a new one\n"
	"  --help, -h           show this help\n"
	"  --version, -V        print the version and exit\n"
	"  --config FILE        read flags from FILE, one 'key = value' per line (key: a flag's\n"
	"                       name without '--'); a flag given here replaces the file's\n"
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
	sli_elog(SLI_LOG_WARN, "notice", NULL, "%s", msg);
}

/* A --cluster entry: one process's addresses, "HOST:PORT" or "PRIMARY/STANDBY/...".  0 or -1. */
static int check_entry(const char *entry)
{
	char one[128];
	const char *p = entry;
	for (;;) {
		size_t len = strcspn(p, "/");
		if (len == 0 || len >= sizeof(one))
			return -1;
		memcpy(one, p, len);
		one[len] = '\0';
		if (cli_check_hostport(one) != 0)
			return -1;
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

/* Where a process listens by default: the first address of its --cluster entry, or for a
 * standby the first one that is not its primary's.  NULL when there is none. */
static const char *own_address(const char *entry, const char *standby_of, char *buf, size_t len)
{
	for (const char *p = entry;;) {
		size_t n = strcspn(p, "/");
		if (standby_of == NULL || strlen(standby_of) != n || strncmp(p, standby_of, n) != 0) {
			snprintf(buf, len, "%.*s", (int)n, p);
			return buf;
		}
		if (p[n] == '\0')
			return NULL;
		p += n + 1;
	}
}

static const cli_opt opts[] = {
	{"listen", 1}, {"data-dir", 1}, {"source", 1}, {"cluster", 1}, {"process", 1},
	{"fsync", 1},  {"segment-size", 1}, {"retain", 1}, {"standby-of", 1}, {"help", 0},
	{"min-insync", 1}, {"etcd", 1}, {"lease-ms", 1},
	{"version", 0}, {"config", 1}, CLI_SECURITY_OPTS, {"tls-client-ca", 1},
	{"metrics-listen", 1}, {"log-level", 1}, {"log-format", 1}, {"log-file", 1},
	CLI_LIMIT_OPTS, {NULL, 0},
};

/* The watchdog's test: the network thread ticks every heartbeat/4; silent for 10 s it is stuck
 * (a deadlock, a disk that never answers), and systemd should restart sluiced. */
static int loop_alive(void *arg)
{
	return sl_storage_loop_idle_ms(arg) < 10000;
}

/* SIGHUP: the token file and the TLS files are read again; a bad one keeps the old set. */
static void reload_credentials(void *arg)
{
	char err[512], *token = NULL;
	int rc;

	if (cli_sec.token_file == NULL && cli_sec.tls_cert == NULL)
		return;
	if (cli_sec.token_file != NULL &&
	    sli_token_load(cli_sec.token_file, &token, err, sizeof(err)) != 0) {
		sli_elog(SLI_LOG_ERROR, "reload_failed", NULL,
		         "SIGHUP: kept the old token and certificate: %s", err);
		return;
	}
	rc = sl_storage_reload_security(arg, token);
	if (token != NULL) {
		memset(token, 0, strlen(token));
		free(token);
	}
	if (rc != 0)
		sli_elog(SLI_LOG_ERROR, "reload_failed", NULL,
		         "SIGHUP: kept the old token and certificate: %s",
		         sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
	else
		sli_elog(SLI_LOG_INFO, "reloaded", NULL, "SIGHUP: reloaded the%s%s",
		         cli_sec.token_file ? " token" : "",
		         cli_sec.tls_cert ? (cli_sec.token_file ? " and TLS certificate" : " TLS certificate") : "");
}

static int run(int argc, char **argv, const char **specs, sli_source_runner **runners)
{
	const char *listen = NULL, *data_dir = DEFAULT_DATA_DIR, *cluster = NULL, *process = NULL;
	const char *standby_of = NULL, *metrics_listen = NULL, *log_file = NULL;
	char status_line[256];
	int log_level = SLI_LOG_INFO, log_format = SLI_LOG_TEXT, metrics_port = 0;
	char addr[160];
	sl_fsync_mode fsync_mode = SL_FSYNC_INTERVAL;
	uint64_t segment_size = 0, retain = 0;
	const char *val;
	const cli_opt *opt;
	char err[512], *addrs[MAX_CLUSTER], cluster_buf[8192], *p, own[128];
	size_t nspecs = 0, naddrs = 0, i;
	uint64_t proc_index = 0, min_insync = 0, lease_ms = 3000;
	const char *etcd = NULL;
	sluiced_etcd ecand;
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
		} else if (strcmp(opt->name, "version") == 0) {
			cli_print_version("sluiced");
			return 0;
		} else if (strcmp(opt->name, "config") == 0) {
			/* merged into argv by main */
		} else if (cli_security_opt(&cli_sec, opt->name, val)) {
			/* stored */
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
		} else if (strcmp(opt->name, "log-file") == 0) {
			log_file = val;
		} else if (strcmp(opt->name, "metrics-listen") == 0) {
			metrics_listen = val;
		} else if (strcmp(opt->name, "log-level") == 0) {
			if ((log_level = sli_elog_level_parse(val)) < 0)
				return bad_args("bad --log-level '%s': expected error, warn, info or debug", val);
		} else if (strcmp(opt->name, "log-format") == 0) {
			if (strcmp(val, "text") == 0)
				log_format = SLI_LOG_TEXT;
			else if (strcmp(val, "json") == 0)
				log_format = SLI_LOG_JSON;
			else
				return bad_args("bad --log-format '%s': expected text or json", val);
		} else if (strcmp(opt->name, "fsync") == 0) {
			if (strcmp(val, "always") == 0)
				fsync_mode = SL_FSYNC_ALWAYS;
			else if (strcmp(val, "interval") == 0)
				fsync_mode = SL_FSYNC_INTERVAL;
			else if (strcmp(val, "never") == 0)
				fsync_mode = SL_FSYNC_NEVER;
			else
				return bad_args("bad --fsync '%s': expected always, interval or never", val);
		} else if (strcmp(opt->name, "etcd") == 0) {
			etcd = val;
		} else if (strcmp(opt->name, "lease-ms") == 0) {
			if (cli_parse_u64(val, &lease_ms) != 0 || lease_ms < 1000 || lease_ms > 600000)
				return bad_args("bad --lease-ms '%s': expected milliseconds from 1000 to 600000", val);
		} else if (strcmp(opt->name, "min-insync") == 0) {
			if (cli_parse_u64(val, &min_insync) != 0 || min_insync == 0 || min_insync > 16)
				return bad_args("bad --min-insync '%s': expected a number of copies from 1 to 16", val);
		} else if (strcmp(opt->name, "retain") == 0) {
			if (cli_parse_u64(val, &retain) != 0)
				return bad_args("bad --retain '%s': expected a number of time units", val);
		} else if (strcmp(opt->name, "segment-size") == 0) {
			if (cli_parse_u64(val, &segment_size) != 0 || segment_size < (128u << 10) ||
			    segment_size > (1u << 30) || (segment_size & (segment_size - 1)) != 0)
				return bad_args("bad --segment-size '%s': expected a power of two from 131072 to 1073741824", val);
		}
	}

	if (metrics_listen != NULL && cli_check_hostport(metrics_listen) != 0)
		return bad_args("bad --metrics-listen address '%s': expected HOST:PORT", metrics_listen);
	if (listen != NULL && cli_check_hostport(listen) != 0)
		return bad_args("bad --listen address '%s': expected HOST:PORT", listen);
	if (*data_dir == '\0')
		return bad_args("%s", "--data-dir must not be empty");
	if (standby_of != NULL && cli_check_hostport(standby_of) != 0)
		return bad_args("bad --standby-of address '%s': expected HOST:PORT", standby_of);
	if (standby_of != NULL && nspecs > 0)
		return bad_args("%s", "--standby-of takes no --source: a standby hosts its primary's sources");
	if ((cluster == NULL) != (process == NULL))
		return bad_args("%s", "--cluster and --process go together");
	for (i = 0; i < nspecs; i++) {
		size_t ni = strcspn(specs[i], "=");
		for (size_t j = 0; j < i; j++)
			if (strcspn(specs[j], "=") == ni && strncmp(specs[i], specs[j], ni) == 0) {
				snprintf(err, sizeof(err), "source '%.*s' is defined twice", (int)ni, specs[i]);
				return bad_args("%s", err);
			}
	}
	if (etcd != NULL && (cluster == NULL || standby_of != NULL || listen == NULL))
		return bad_args("%s", "--etcd needs --cluster, --process and --listen (this candidate's "
		                "own address of its entry), and takes no --standby-of");
	if (cluster != NULL) {
		if (strlen(cluster) >= sizeof(cluster_buf))
			return bad_args("%s", "--cluster list too long");
		strcpy(cluster_buf, cluster);
		for (p = strtok(cluster_buf, ","); p != NULL; p = strtok(NULL, ",")) {
			if (naddrs == MAX_CLUSTER)
				return bad_args("%s", "--cluster lists too many addresses");
			if (check_entry(p) != 0)
				return bad_args("bad --cluster address '%s': expected HOST:PORT, or "
				                "PRIMARY/STANDBY/... (HOST:PORT each)", p);
			addrs[naddrs++] = p;
		}
		if (naddrs == 0)
			return bad_args("%s", "--cluster needs at least one address");
		if (cli_parse_u64(process, &proc_index) != 0 || proc_index >= naddrs) {
			snprintf(err, sizeof(err), "--process %s is not in 0..%zu", process, naddrs - 1);
			return bad_args("%s", err);
		}
		if (listen == NULL && (listen = own_address(addrs[proc_index], standby_of, own,
		                                            sizeof(own))) == NULL) {
			snprintf(err, sizeof(err), "--standby-of %s: process %s's entry '%s' in --cluster "
			         "names no address for this standby: list it there (PRIMARY/STANDBY) or "
			         "give --listen", standby_of, process, addrs[proc_index]);
			return bad_args("%s", err);
		}
	}
	if (listen == NULL)
		listen = DEFAULT_LISTEN;
	memset(&ecand, 0, sizeof(ecand));
	if (etcd != NULL) {
		ecand = (sluiced_etcd){.endpoints = etcd, .cluster = cluster, .process = (uint32_t)proc_index,
		                       .self = listen, .lease_ms = (int64_t)lease_ms, .specs = specs,
		                       .nspecs = nspecs, .runners = runners};
		if (sluiced_etcd_check(&ecand, addrs[proc_index]) != 0)
			return 2;
		if (min_insync == 0)
			min_insync = strchr(addrs[proc_index], '/') != NULL ? 2 : 1;
	}
	if (log_file != NULL && (rc = sluiced_log_open(log_file)) != 0) {
		fprintf(stderr, "sluiced: cannot open --log-file %s: %s\n", log_file, strerror(-rc));
		return 1;
	}
	sli_elog_setup("sluiced", log_level, log_format, 2);

	/* Every thread started from here on inherits the blocked signals; sluiced_wait takes them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((rc = make_dirs(data_dir)) != 0) {
		sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "cannot create data directory %s: %s",
		         data_dir, sl_strerror(rc));
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
	cfg.min_insync = (uint32_t)min_insync;
	cfg.coordinated = etcd != NULL;
	cfg.warn = print_notice;
	cfg.progress = sluiced_recovery_progress;
	if (cli_security_load(&cli_sec, err, sizeof(err)) != 0) {
		sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "%s", err);
		return 1;
	}
	cfg.tls_cert = cli_sec.tls_cert;
	cfg.tls_key = cli_sec.tls_key;
	cfg.tls_client_ca = cli_sec.tls_client_ca;
	cfg.tls_ca = cli_sec.tls_ca;
	cfg.auth_token = cli_sec.token;
	snprintf(status_line, sizeof(status_line), "recovering the data directory %s", data_dir);
	cli_notify_status(status_line);
	rc = sl_storage_open(&cfg, &st);
	cli_security_fini(&cli_sec); /* the runtime keeps its own copy */
	if (rc != 0) {
		sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "%s",
		         sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
		return 1;
	}
	if (metrics_listen != NULL &&
	    (rc = sl_storage_metrics_listen(st, metrics_listen, &metrics_port)) != 0) {
		sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "%s",
		         sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
		status = 1;
		goto out_stop;
	}
	if (cluster != NULL) {
		/* Every process of one cluster has the same list and the same specs, so the same
		 * fingerprint: clients refuse to mix processes whose fingerprints differ. */
		uint64_t fp = fnv1a(1469598103934665603ull, cluster, strlen(cluster));
		for (i = 0; i < nspecs; i++)
			fp = fnv1a(fp ^ 0xff, specs[i], strlen(specs[i]));
		if ((rc = sl_storage_set_cluster(st, (const char *const *)addrs, (uint32_t)naddrs,
		                                 (uint32_t)proc_index, fp)) != 0) {
			sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "cannot join the cluster: %s",
			         sl_strerror(rc));
			status = 1;
			goto out_stop;
		}
	}
	/* Under etcd the sources start when this candidate leads (sluiced_etcd.c). */
	for (i = 0; etcd == NULL && i < nspecs; i++) {
		if ((rc = sli_source_start(st, specs[i], &runners[i], err, sizeof(err))) != 0) {
			sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "%s", err);
			status = (rc == SL_EARG || rc == SL_EDUPLICATE) ? 2 : 1;
			goto out_stop;
		}
	}
	if (standby_of != NULL && (rc = sl_storage_follow(st, standby_of)) != 0) {
		sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "cannot be a standby of %s: %s", standby_of,
		         sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
		status = 1;
		goto out_stop;
	}
	if ((rc = sl_storage_start(st)) != 0) {
		sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "cannot start the storage runtime: %s",
		         sl_strerror(rc));
		status = 1;
		goto out_stop;
	}
	/* The metrics line comes first: whoever waits for "listening on" then finds it too. */
	if (metrics_listen != NULL) {
		colon = strrchr(metrics_listen, ':');
		snprintf(addr, sizeof(addr), "%.*s:%d", colon == metrics_listen ? 7 : (int)(colon - metrics_listen),
		         colon == metrics_listen ? "0.0.0.0" : metrics_listen, metrics_port);
		sli_kv mkv[] = {{"addr", addr, 0}, {NULL, NULL, 0}};
		sli_elog(SLI_LOG_ALWAYS, "metrics_listening", mkv, "metrics on %s", addr);
	}
	colon = strrchr(listen, ':');
	snprintf(addr, sizeof(addr), "%.*s:%d", colon == listen ? 7 : (int)(colon - listen),
	         colon == listen ? "0.0.0.0" : listen, sl_storage_port(st));
	sli_kv kv[] = {{"addr", addr, 0}, {NULL, NULL, 0}};
	sli_elog(SLI_LOG_ALWAYS, "listening", kv, "listening on %s", addr);

	if (etcd != NULL && sluiced_etcd_start(&ecand, st) != 0) {
		status = 1;
		goto out_stop;
	}
	if (etcd != NULL)
		snprintf(status_line, sizeof(status_line), "candidate for process %u on %s",
		         (unsigned)proc_index, addr);
	else if (standby_of != NULL)
		snprintf(status_line, sizeof(status_line), "standby of %s, serving reads on %s",
		         standby_of, addr);
	else
		snprintf(status_line, sizeof(status_line), "serving %zu source%s on %s", nspecs,
		         nspecs == 1 ? "" : "s", addr);
	cli_notify_ready(status_line);

	sig = sluiced_wait(&sigs, log_file, reload_credentials, loop_alive, st);
	sli_elog(SLI_LOG_INFO, "stopping", NULL, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	cli_notify_stopping("stopping: closing connections and sources");

out_stop:
	if (etcd != NULL) {
		sluiced_etcd_stop(&ecand); /* the candidate started the runners: it stops them */
		if (ecand.exit_status != 0)
			status = ecand.exit_status;
	}
	for (i = 0; i < nspecs; i++)
		sli_source_stop(runners[i]);
	sl_storage_close(st);
	return status;
}

int main(int argc, char **argv)
{
	const char **specs = NULL;
	sli_source_runner **runners = NULL;
	cli_config config;
	char err[512];
	int status;

	if (cli_config_merge(argc, argv, opts, &config, err, sizeof(err)) != 0) {
		cli_config_fini(&config);
		return bad_args("%s", err);
	}
	argc = config.argc;
	argv = config.argv;
	specs = calloc((size_t)argc + 1, sizeof(*specs));
	runners = calloc((size_t)argc + 1, sizeof(*runners));
	if (specs == NULL || runners == NULL) {
		fprintf(stderr, "sluiced: out of memory\n");
		status = 1;
	} else {
		status = run(argc, argv, specs, runners);
	}
	free(runners);
	free(specs);
	cli_config_fini(&config);
	return status;
}
