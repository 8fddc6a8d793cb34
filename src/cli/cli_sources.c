/*
 * cli_sources.c - `sluice sources`: one tab-separated line per source of a storage server,
 * NAME ID KIND WORKERS UPPER; or with --json one JSON document (jansson) of the same fields.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sluice/compute.h"

static const char usage_sources[] =
	"usage: sluice sources [--server HOST:PORT] [--json]\n"
	"                      [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--auth-token-file FILE]\n"
	"\n"
	"Prints one tab-separated line per source: NAME ID KIND WORKERS UPPER\n"
	"(UPPER is the minimum over all workers, or 'closed').\n"
	"\n"
	"  --server HOST:PORT   storage server (default " CLI_DEFAULT_SERVER "); a comma-separated list\n"
	"                       names a primary and its standbys: the one with the highest term is used\n"
	"  --json               one JSON document instead: {\"sources\": [{\"name\", \"id\", \"kind\",\n"
	"                       \"workers\", \"upper\" (null once closed), \"closed\"}, ...]}\n"
	CLI_SECURITY_HELP;

/* {"sources": [...]} on stdout.  0, or -1 out of memory or when stdout fails. */
static int print_json(const sl_source_info *infos, size_t n)
{
	json_t *list = json_array(), *doc = json_pack("{s:o}", "sources", list);
	int rc = doc == NULL ? -1 : 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		int closed = infos[i].upper == SL_TIME_CLOSED;
		json_t *o = json_pack("{s:s, s:I, s:s, s:I, s:o, s:b}", "name", infos[i].name, "id",
		                      (json_int_t)infos[i].id, "kind", infos[i].kind, "workers",
		                      (json_int_t)infos[i].workers, "upper",
		                      closed ? json_null() : json_integer((json_int_t)infos[i].upper),
		                      "closed", closed);
		if (json_array_append_new(list, o) != 0)
			rc = -1;
	}
	if (rc == 0 && (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
	                fputc('\n', stdout) == EOF || fflush(stdout) != 0))
		rc = -1;
	json_decref(doc);
	return rc;
}

int cli_sources(int argc, char **argv)
{
	static const cli_opt opts[] = {{"server", 1}, {"help", 0}, {"json", 0}, CLI_SECURITY_OPTS,
	                               {NULL, 0}};
	const char *server = CLI_DEFAULT_SERVER, *val;
	const cli_opt *opt;
	char err[256];
	cli_args a;
	sl_client *c = NULL;
	sl_source_info *infos = NULL;
	size_t n = 0, i;
	cli_out o;
	int k, rc, status = 0, json = 0;

	cli_args_init(&a, argc, argv, 2);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END) {
		if (k == CLI_BAD)
			return cli_bad_args("sources", err);
		if (k == CLI_POSITIONAL) {
			snprintf(err, sizeof(err), "unexpected argument '%s'", val);
			return cli_bad_args("sources", err);
		}
		if (strcmp(opt->name, "help") == 0) {
			fputs(usage_sources, stdout);
			return 0;
		}
		if (strcmp(opt->name, "json") == 0)
			json = 1;
		else if (!cli_security_opt(&cli_sec, opt->name, val))
			server = val;
	}
	if (cli_check_server_list(server) != 0) {
		snprintf(err, sizeof(err), "bad --server address '%s': expected HOST:PORT", server);
		return cli_bad_args("sources", err);
	}
	if (cli_out_init(&o, STDOUT_FILENO, 64u << 10) != 0)
		return 1;
	if (cli_connect(server, &c) != 0) {
		status = 1;
		goto out;
	}
	if ((rc = sl_client_list_sources(c, CLI_REQUEST_TIMEOUT_MS, &infos, &n)) != 0) {
		fprintf(stderr, "sluice: cannot list the sources of %s: %s\n", server, sl_strerror(rc));
		status = 1;
		goto out;
	}
	if (json) {
		if (print_json(infos, n) != 0) {
			fprintf(stderr, "sluice: cannot write the JSON document\n");
			status = 1;
		}
		goto out;
	}
	for (i = 0; i < n; i++) {
		cli_out_escaped(&o, (const uint8_t *)infos[i].name, strlen(infos[i].name));
		cli_out_char(&o, '\t');
		cli_out_u64(&o, infos[i].id);
		cli_out_char(&o, '\t');
		cli_out_escaped(&o, (const uint8_t *)infos[i].kind, strlen(infos[i].kind));
		cli_out_char(&o, '\t');
		cli_out_u64(&o, infos[i].workers);
		cli_out_char(&o, '\t');
		if (infos[i].upper == SL_TIME_CLOSED)
			cli_out_str(&o, "closed");
		else
			cli_out_u64(&o, infos[i].upper);
		cli_out_char(&o, '\n');
	}
out:
	rc = cli_out_fini(&o);
	if (status == 0)
		status = cli_out_status(rc);
	sl_source_info_free(infos, n);
	sl_client_close(c);
	return status;
}
