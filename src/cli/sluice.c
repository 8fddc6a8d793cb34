/*
 * sluice.c - the command-line client's entry: the main usage, dispatch to the commands (tail:
 * cli_tail.c, sources: cli_sources.c, ingest: cli_ingest.c, promote: cli_promote.c, stat:
 * cli_stat.c) and bench, which runs sluice_bench.
 *
 * Output follows DESIGN.md's command-line contract exactly: tab-separated lines, rows escaped
 * (\t, \n, \\), errors as one line on stderr.  Exit status: 0 on success, 1 for a runtime failure
 * (unknown source, refused connection, rejected batch), 2 for bad arguments.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char usage_main[] =
	"usage: sluice COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  tail      print the updates of a source as they arrive\n"
	"  sources   list the sources of a storage server\n"
	"  ingest    append rows from stdin to an ingest source, as one atomic batch\n"
	"  promote   make a standby (sluiced --standby-of) take over as the primary\n"
	"  bench     run the benchmark (sluice_bench; sluice bench --help)\n"
	"  stat      show what a storage process is doing (sources, connections, lag)\n"
	"\n"
	"Options:\n"
	"  -h, --help     show this help\n"
	"  -V, --version  print the version and exit\n"
	"\n"
	"Run 'sluice COMMAND --help' for the options of a command.\n";

/* sluice bench ARGS: runs the benchmark program, which lives beside this one (installed) or in
 * the build tree's bench/ folder, else on PATH.  It links Redis's client library, which the
 * command-line client should not need, hence a program of its own. */
static int cmd_bench(int argc, char **argv)
{
	char self[4096], path[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			static const char *const places[] = {"%s/sluice_bench", "%s/bench/sluice_bench"};
			for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
				snprintf(path, sizeof(path), places[i], self);
				if (access(path, X_OK) == 0) {
					argv[1] = path;
					execv(path, argv + 1);
				}
			}
		}
	}
	argv[1] = "sluice_bench";
	execvp("sluice_bench", argv + 1);
	fprintf(stderr, "sluice: cannot run sluice_bench: %s\n", strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	signal(SIGPIPE, SIG_IGN);
	if (cmd == NULL) {
		fprintf(stderr, "sluice: missing COMMAND: tail, sources or ingest (see sluice --help)\n");
		return 2;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		cli_print_version("sluice");
		return 0;
	}
	if (strcmp(cmd, "tail") == 0)
		return cli_tail(argc, argv);
	if (strcmp(cmd, "sources") == 0)
		return cli_sources(argc, argv);
	if (strcmp(cmd, "ingest") == 0)
		return cli_ingest(argc, argv);
	if (strcmp(cmd, "bench") == 0)
		return cmd_bench(argc, argv);
	if (strcmp(cmd, "promote") == 0)
		return cli_promote(argc, argv);
	if (strcmp(cmd, "stat") == 0)
		return cli_stat(argc, argv);
	fprintf(stderr, "sluice: unknown command '%s' (see sluice --help)\n", cmd);
	return 2;
}
