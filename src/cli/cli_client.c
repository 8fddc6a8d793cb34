/*
 * cli_client.c - what sluice's client commands (tail, sources, ingest) share: connecting to a
 * storage server (with retries, TLS and the token of cli_sec), finding a source by name, the
 * exit status of a failed write to stdout, and the line for bad arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "sluice/compute.h"

#define CONNECT_RETRY_MS 5000

int cli_bad_args(const char *cmd, const char *msg)
{
	fprintf(stderr, "sluice: %s (see sluice %s --help)\n", msg, cmd);
	return 2;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Connects, retrying a refused connection for about CONNECT_RETRY_MS (the server may be
 * starting).  Once connected, a lost connection is retried for retry_for_ms (the client
 * runtime's reconnects).  Prints the one-line error itself.  0 or the error. */
int cli_connect_retry(const char *server, uint32_t retry_for_ms, sl_client **out)
{
	sl_client_config cfg;
	uint64_t deadline = cli_now_ms() + CONNECT_RETRY_MS;
	int rc, delay = 50;

	sl_client_config_init(&cfg);
	cfg.server = server;
	cfg.retry_for_ms = retry_for_ms;
	{
		char err[512];
		if (cli_security_load(&cli_sec, err, sizeof(err)) != 0) {
			fprintf(stderr, "sluice: %s\n", err);
			return SL_EARG;
		}
	}
	cfg.tls_ca = cli_sec.tls_ca;
	cfg.tls_cert = cli_sec.tls_cert;
	cfg.tls_key = cli_sec.tls_key;
	cfg.auth_token = cli_sec.token;
	for (;;) {
		rc = sl_client_open(&cfg, out);
		if (rc != -ECONNREFUSED || cli_now_ms() >= deadline)
			break;
		sleep_ms(delay);
		if (delay < 500)
			delay *= 2;
	}
	if (rc != 0) {
		/* The runtime's own message says more when it has one (which process, and why). */
		const char *why = sl_client_last_error();
		fprintf(stderr, "sluice: cannot connect to %s: %s\n", server,
		        rc != -ECONNREFUSED && why != NULL && why[0] != '\0' ? why : sl_strerror(rc));
	}
	return rc;
}

int cli_connect(const char *server, sl_client **out)
{
	sl_client_config cfg;

	sl_client_config_init(&cfg);
	return cli_connect_retry(server, cfg.retry_for_ms, out);
}

/* Finds SOURCE by name.  Prints the error itself.  0 with *infos (free with sl_source_info_free)
 * and *found, or non-zero. */
int cli_find_source(sl_client *c, const char *server, const char *name, sl_source_info **infos,
                    size_t *n, sl_source_info **found)
{
	size_t i;
	int rc;

	if ((rc = sl_client_list_sources(c, CLI_REQUEST_TIMEOUT_MS, infos, n)) != 0) {
		fprintf(stderr, "sluice: cannot list the sources of %s: %s\n", server, sl_strerror(rc));
		return rc;
	}
	for (i = 0; i < *n; i++) {
		if (strcmp((*infos)[i].name, name) == 0) {
			*found = &(*infos)[i];
			return 0;
		}
	}
	fprintf(stderr, "sluice: unknown source %s\n", name);
	sl_source_info_free(*infos, *n);
	*infos = NULL;
	return SL_ENOSOURCE;
}

/* Exit status for a failed write to stdout: a closed pipe (`| head`) is not an error. */
int cli_out_status(int rc)
{
	if (rc == 0 || rc == -EPIPE)
		return 0;
	fprintf(stderr, "sluice: cannot write the output: %s\n", sl_strerror(rc));
	return 1;
}
