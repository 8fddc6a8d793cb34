/*
 * cli_args.c - a small long-option parser for the programs ("--name value", "--name=value",
 * options and positionals in any order, "--" ends the options) and number/address checks.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "net/sock.h"

void cli_args_init(cli_args *a, int argc, char **argv, int first)
{
	a->argc = argc;
	a->argv = argv;
	a->i = first;
	a->only_positional = 0;
}

int cli_args_next(cli_args *a, const cli_opt *opts, const cli_opt **opt, const char **val,
                  char *err, size_t errlen)
{
	const char *arg, *eq, *name;
	size_t namelen;
	const cli_opt *o;

	*opt = NULL;
	*val = NULL;
	if (a->i >= a->argc)
		return CLI_END;
	arg = a->argv[a->i++];
	if (a->only_positional || arg[0] != '-' || arg[1] == '\0') {
		*val = arg;
		return CLI_POSITIONAL;
	}
	if (strcmp(arg, "--") == 0) {
		a->only_positional = 1;
		return cli_args_next(a, opts, opt, val, err, errlen);
	}
	if (strcmp(arg, "-h") == 0)
		arg = "--help";
	else if (strcmp(arg, "-V") == 0)
		arg = "--version";
	if (arg[1] != '-') {
		snprintf(err, errlen, "unknown option '%s'", arg);
		return CLI_BAD;
	}
	name = arg + 2;
	eq = strchr(name, '=');
	namelen = eq ? (size_t)(eq - name) : strlen(name);
	for (o = opts; o->name != NULL; o++) {
		if (strlen(o->name) == namelen && memcmp(o->name, name, namelen) == 0)
			break;
	}
	if (o->name == NULL) {
		snprintf(err, errlen, "unknown option '--%.*s'", (int)namelen, name);
		return CLI_BAD;
	}
	if (!o->has_arg) {
		if (eq != NULL) {
			snprintf(err, errlen, "option '--%s' takes no value", o->name);
			return CLI_BAD;
		}
	} else if (eq != NULL) {
		*val = eq + 1;
	} else if (a->i < a->argc) {
		*val = a->argv[a->i++];
	} else {
		snprintf(err, errlen, "option '--%s' needs a value", o->name);
		return CLI_BAD;
	}
	*opt = o;
	return CLI_OPTION;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int cli_parse_i64(const char *s, size_t n, int64_t *out)
{
	uint64_t v = 0, limit;
	size_t i = 0;
	int neg = 0;

	if (n > 0 && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return -1;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (limit - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int cli_check_hostport(const char *s)
{
	struct sockaddr_in sa;

	return sli_parse_hostport(s, &sa) == 0 ? 0 : -1;
}

int cli_check_server_list(const char *s)
{
	char buf[1024];
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n + 1);
	for (char *p = buf, *e;; p = e + 1) {
		if ((e = strchr(p, ',')) != NULL)
			*e = '\0';
		if (cli_check_hostport(p) != 0)
			return -1;
		if (e == NULL)
			return 0;
	}
}
