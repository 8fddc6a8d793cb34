/*
 * cli_escape.c - the row escapes of the command-line contract: a tab, newline or backslash in a
 * row or message is printed as \t, \n, \\, and `sluice ingest` reads the same escapes back.
 * Every other byte passes through unchanged (rows are opaque bytes).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

void cli_out_escaped(cli_out *o, const uint8_t *p, size_t n)
{
	size_t i, start = 0;
	char esc;

	for (i = 0; i < n; i++) {
		switch (p[i]) {
		case '\t': esc = 't'; break;
		case '\n': esc = 'n'; break;
		case '\\': esc = '\\'; break;
		default: continue;
		}
		cli_out_put(o, p + start, i - start);
		cli_out_char(o, '\\');
		cli_out_char(o, esc);
		start = i + 1;
	}
	cli_out_put(o, p + start, n - start);
}

ssize_t cli_unescape(char *s, size_t n, char *why, size_t whylen)
{
	size_t i, j;

	for (i = 0, j = 0; i < n; i++) {
		if (s[i] != '\\') {
			s[j++] = s[i];
			continue;
		}
		if (i + 1 == n) {
			snprintf(why, whylen, "backslash at the end of the row (write \\\\ for a backslash)");
			return -1;
		}
		switch (s[++i]) {
		case 't': s[j++] = '\t'; break;
		case 'n': s[j++] = '\n'; break;
		case '\\': s[j++] = '\\'; break;
		default:
			if ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f)
				snprintf(why, whylen, "invalid escape \\%c (only \\t, \\n and \\\\ are allowed)",
				         s[i]);
			else
				snprintf(why, whylen, "invalid escape \\x%02x (only \\t, \\n and \\\\ are allowed)",
				         (unsigned char)s[i]);
			return -1;
		}
	}
	return (ssize_t)j;
}
