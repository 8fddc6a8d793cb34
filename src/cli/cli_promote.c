/*
 * cli_promote.c - `sluice promote [--server HOST:PORT]`: makes a standby (sluiced --standby-of)
 * the primary.  A raw connection: Hello, Promote, then Promoted(term) or Error, within a
 * deadline.  Prints the new term and exits 0, or one line on stderr and exits 1 (2 for bad
 * arguments).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/proto.h"

#define PROMOTE_TIMEOUT_MS 10000

static const char usage_promote[] =
	"usage: sluice promote [--server HOST:PORT] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n"
	"                      [--auth-token-file FILE]\n"
	"\n"
	"Makes the standby at HOST:PORT (a sluiced started with --standby-of) stop following its\n"
	"primary and take over: its ingest sources accept batches from now on, and its term (the\n"
	"fencing epoch clients use to pick between a primary and its standbys) becomes the\n"
	"primary's + 1.  Prints the new term.  Replication is asynchronous: what the standby had not\n"
	"received from the primary yet is not on it.  With sluiced --etcd: a graceful switchover\n"
	"instead; the leader hands over to this standby once it holds everything, and the term it\n"
	"then leads at is printed.\n"
	"\n"
	"  --server HOST:PORT   the standby (default 127.0.0.1:6876)\n"
	CLI_SECURITY_HELP;

int cli_promote(int argc, char **argv)
{
	static const cli_opt opts[] = {{"server", 1}, {"help", 0}, CLI_SECURITY_OPTS, {NULL, 0}};
	const char *server = "127.0.0.1:6876", *val;
	const cli_opt *opt;
	char err[512];
	cli_args a;
	int k;
	cli_args_init(&a, argc, argv, 2);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END) {
		if (k == CLI_BAD) {
			fprintf(stderr, "sluice: %s (see sluice promote --help)\n", err);
			return 2;
		}
		if (k == CLI_POSITIONAL) {
			fprintf(stderr, "sluice: unexpected argument '%s' (see sluice promote --help)\n", val);
			return 2;
		}
		if (strcmp(opt->name, "help") == 0) {
			fputs(usage_promote, stdout);
			return 0;
		}
		if (!cli_security_opt(&cli_sec, opt->name, val))
			server = val;
	}
	if (cli_check_hostport(server) != 0) {
		fprintf(stderr, "sluice: bad --server address '%s': expected HOST:PORT (see sluice "
		        "promote --help)\n", server);
		return 2;
	}
	if (cli_security_load(&cli_sec, err, sizeof(err)) != 0) {
		fprintf(stderr, "sluice: %s\n", err);
		return 1;
	}
	cli_conn conn;
	if (cli_conn_open(&conn, server, PROMOTE_TIMEOUT_MS, err, sizeof(err)) != 0) {
		fprintf(stderr, "sluice: %s\n", err);
		cli_security_fini(&cli_sec);
		return 1;
	}
	size_t cap = 1u << 16, len = 0;
	uint8_t *buf = malloc(cap);
	sli_buf out;
	sli_frame f, hello, promote = {.type = SLI_PROMOTE};
	ssize_t rc;
	int status = 1;
	sli_buf_init(&out);
	cli_conn_hello(&hello, "sluice promote");
	if (buf == NULL || sli_frame_encode(&out, &hello) != 0 ||
	    sli_frame_encode(&out, &promote) != 0) {
		fprintf(stderr, "sluice: out of memory\n");
		goto out;
	}
	if ((rc = cli_conn_send(&conn, &out)) != 0) {
		fprintf(stderr, "sluice: cannot send to %s: %s\n", server, sl_strerror((int)rc));
		goto out;
	}
	if ((rc = cli_conn_next(&conn, buf, cap, &len, &f, 1)) < 0) {
		fprintf(stderr, "sluice: no answer from %s: %s\n", server, sl_strerror((int)rc));
		goto out;
	}
	if (f.type == SLI_HELLO) {
		memmove(buf, buf + rc, len - (size_t)rc);
		len -= (size_t)rc;
		if ((rc = cli_conn_next(&conn, buf, cap, &len, &f, 0)) < 0) {
			fprintf(stderr, "sluice: no answer to Promote from %s: %s\n", server,
			        sl_strerror((int)rc));
			goto out;
		}
	}
	if (f.type == SLI_PROMOTED) {
		printf("%" PRIu64 "\n", f.u.promoted.term);
		status = fflush(stdout) == 0 ? 0 : 1;
	} else if (f.type == SLI_ERROR) {
		fprintf(stderr, "sluice: cannot promote %s: %.*s\n", server,
		        (int)f.u.error.message.len, (const char *)f.u.error.message.ptr);
	} else {
		fprintf(stderr, "sluice: cannot promote %s: unexpected %s frame\n", server,
		        sli_frame_type_name(f.type));
	}
out:
	sli_buf_fini(&out);
	free(buf);
	cli_conn_close(&conn);
	cli_security_fini(&cli_sec);
	return status;
}
