/*
 * cli_config.c - `--config FILE`: a program's flags read from a file, one "key = value" per
 * line, merged with the command line so that the command line wins.
 *
 * The file's lines become "--key value" arguments placed before the command line's, and the
 * program parses the result as if it had been typed.  A key the command line also gives is
 * dropped from the file altogether, so a repeatable flag (--source) given on the command line
 * replaces the file's list instead of adding to it.  Blank lines and lines starting with '#'
 * are skipped; spaces around key and value are trimmed; a value may be put in double quotes
 * (kept verbatim inside).  A flag without a value is written "key = true" ("false" leaves it
 * out).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CONFIG_MAX_BYTES (1u << 20)

static char *trim(char *s)
{
	char *e;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static const cli_opt *find_opt(const cli_opt *opts, const char *name)
{
	for (const cli_opt *o = opts; o->name != NULL; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

/* Whether the command line (argv[1..]) gives option `name`. */
static int on_command_line(int argc, char **argv, const cli_opt *opts, const char *name)
{
	const cli_opt *opt;
	const char *val;
	char err[256];
	cli_args a;
	int k;

	cli_args_init(&a, argc, argv, 1);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END) {
		if (k == CLI_BAD)
			continue;
		if (k == CLI_OPTION && strcmp(opt->name, name) == 0)
			return 1;
	}
	return 0;
}

/* The --config argument of the command line, or NULL. */
static const char *config_path(int argc, char **argv, const cli_opt *opts)
{
	const char *val, *path = NULL;
	const cli_opt *opt;
	char err[256];
	cli_args a;
	int k;

	cli_args_init(&a, argc, argv, 1);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END)
		if (k == CLI_OPTION && strcmp(opt->name, "config") == 0)
			path = val;
	return path;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "cannot read --config %s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(CONFIG_MAX_BYTES + 1);
	n = buf ? fread(buf, 1, CONFIG_MAX_BYTES + 1, f) : 0;
	if (buf == NULL || ferror(f) || n > CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "cannot read --config %s: %s", path,
		         buf == NULL ? "out of memory" : n > CONFIG_MAX_BYTES ? "larger than 1 MiB" : strerror(errno));
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	if (memchr(buf, '\0', n) != NULL) {
		snprintf(err, errlen, "--config %s is not a text file (it holds a NUL byte)", path);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* Parses the file's lines into out (room for 2 per line).  Returns how many arguments, or -1. */
static int parse_lines(cli_config *cfg, const char *path, const cli_opt *opts, int argc,
                       char **argv, char **out, char *err, size_t errlen)
{
	char *text = cfg->text;
	int n = 0, lineno = 0;
	char *line, *next;

	for (line = text; line != NULL; line = next) {
		char *eq, *key, *val;
		const cli_opt *o;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		line = trim(line);
		if (*line == '\0' || *line == '#')
			continue;
		if ((eq = strchr(line, '=')) == NULL) {
			snprintf(err, errlen, "--config %s line %d: expected 'key = value'", path, lineno);
			return -1;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (strlen(val) >= 2 && val[0] == '"' && val[strlen(val) - 1] == '"') {
			val[strlen(val) - 1] = '\0';
			val++;
		}
		o = find_opt(opts, key);
		if (o == NULL || strcmp(key, "config") == 0 || strcmp(key, "help") == 0 ||
		    strcmp(key, "version") == 0) {
			snprintf(err, errlen, "--config %s line %d: unknown key '%s'", path, lineno, key);
			return -1;
		}
		if (on_command_line(argc, argv, opts, key))
			continue;
		if (!o->has_arg) {
			if (strcmp(val, "false") == 0)
				continue;
			if (strcmp(val, "true") != 0) {
				snprintf(err, errlen, "--config %s line %d: '%s' takes true or false", path,
				         lineno, key);
				return -1;
			}
		}
		/* Values point into text, which lives as long as the arguments; "--key" is built. */
		if ((out[n] = malloc(strlen(key) + 3)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		sprintf(out[n], "--%s", key);
		cfg->keys[cfg->nkeys++] = out[n++];
		if (o->has_arg)
			out[n++] = val;
	}
	return n;
}

int cli_config_merge(int argc, char **argv, const cli_opt *opts, cli_config *cfg, char *err,
                     size_t errlen)
{
	const char *path = config_path(argc, argv, opts);
	int lines = 1, n;

	memset(cfg, 0, sizeof(*cfg));
	cfg->argc = argc;
	cfg->argv = argv;
	if (path == NULL)
		return 0;
	if ((cfg->text = read_file(path, err, errlen)) == NULL)
		return -1;
	for (const char *p = cfg->text; *p; p++)
		lines += *p == '\n';
	cfg->keys = calloc((size_t)lines, sizeof(*cfg->keys));
	cfg->argv = calloc((size_t)lines * 2 + (size_t)argc + 1, sizeof(*cfg->argv));
	if (cfg->keys == NULL || cfg->argv == NULL) {
		snprintf(err, errlen, "out of memory");
		cli_config_fini(cfg);
		return -1;
	}
	/* The file's arguments go right after argv[0], the command line's after them. */
	if ((n = parse_lines(cfg, path, opts, argc, argv, cfg->argv + 1, err, errlen)) < 0) {
		cli_config_fini(cfg);
		return -1;
	}
	cfg->argv[0] = argv[0];
	memcpy(cfg->argv + 1 + n, argv + 1, (size_t)(argc - 1) * sizeof(*cfg->argv));
	cfg->argc = argc + n;
	return 0;
}

void cli_config_fini(cli_config *cfg)
{
	for (int i = 0; i < cfg->nkeys; i++)
		free(cfg->keys[i]);
	free(cfg->keys);
	if (cfg->text != NULL) /* otherwise argv is the caller's */
		free(cfg->argv);
	free(cfg->text);
	memset(cfg, 0, sizeof(*cfg));
}
