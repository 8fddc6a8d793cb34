/*
 * cli_stat_report.c - a storage process's report (Prometheus text) parsed in place into
 * samples (name, labels, value), and looked up by name and labels.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_stat.h"

/* Parses a label value in place (undoing \\, \" and \n); returns past the closing quote. */
static char *parse_label_value(char *p, const char **out)
{
	char *w = p;
	*out = p;
	while (*p != '\0' && *p != '"') {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			*w++ = *p == 'n' ? '\n' : *p;
			p++;
		} else {
			*w++ = *p++;
		}
	}
	if (*p != '"')
		return NULL;
	*w = '\0'; /* w <= p: safe even when nothing was unescaped */
	return p + 1;
}

/* Parses the Prometheus text in place (text must outlive r).  0, or -1 for a malformed line. */
int stat_parse_report(char *text, report *r)
{
	char *line = text, *next;
	for (; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if (r->n == r->cap) {
			size_t cap = r->cap ? 2 * r->cap : 256;
			sample *s = realloc(r->s, cap * sizeof(*s));
			if (s == NULL)
				return -1;
			r->s = s;
			r->cap = cap;
		}
		sample *s = &r->s[r->n];
		memset(s, 0, sizeof(*s));
		s->name = line;
		char *p = line + strcspn(line, "{ ");
		if (*p == '{') {
			*p++ = '\0';
			while (*p != '}') {
				char *eq = strchr(p, '=');
				if (eq == NULL || eq[1] != '"' || s->nlabels == MAX_LABELS)
					return -1;
				*eq = '\0';
				s->key[s->nlabels] = p;
				if ((p = parse_label_value(eq + 2, &s->val[s->nlabels])) == NULL)
					return -1;
				s->nlabels++;
				if (*p == ',')
					p++;
				else if (*p != '}')
					return -1;
			}
			p++;
		}
		if (*p != ' ')
			return -1;
		*p++ = '\0';
		s->value = p;
		p[strcspn(p, " ")] = '\0'; /* a timestamp after the value is ignored */
		r->n++;
	}
	return 0;
}

const char *stat_label(const sample *s, const char *key)
{
	for (int i = 0; i < s->nlabels; i++)
		if (strcmp(s->key[i], key) == 0)
			return s->val[i];
	return "";
}

/* The first sample named `name` whose labels k1 and k2 (NULL: any) have the values given.  The
 * search starts at *hint and wraps; *hint is left just past the match.  The server writes the
 * samples of every metric in the same order (sources, workers, connections, subscriptions), so
 * looking up the rows of one table in order through one hint per metric costs O(1) each. */
const sample *stat_find_h(const report *r, size_t *hint, const char *name, const char *k1,
                            const char *v1, const char *k2, const char *v2)
{
	size_t start = *hint < r->n ? *hint : 0;
	for (size_t n = 0; n < r->n; n++) {
		size_t i = (start + n) % r->n;
		const sample *s = &r->s[i];
		if (strcmp(s->name, name) != 0)
			continue;
		if (k1 != NULL && strcmp(stat_label(s, k1), v1) != 0)
			continue;
		if (k2 != NULL && strcmp(stat_label(s, k2), v2) != 0)
			continue;
		*hint = i + 1;
		return s;
	}
	return NULL;
}

const sample *stat_find(const report *r, const char *name, const char *k1, const char *v1,
                          const char *k2, const char *v2)
{
	size_t hint = 0;
	return stat_find_h(r, &hint, name, k1, v1, k2, v2);
}

uint64_t stat_value_u64(const sample *s)
{
	if (s == NULL)
		return 0;
	if (strcmp(s->value, "+Inf") == 0)
		return UINT64_MAX;
	return strtoull(s->value, NULL, 10);
}

double stat_value_f(const sample *s)
{
	return s == NULL ? 0.0 : strtod(s->value, NULL);
}
