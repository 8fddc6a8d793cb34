/*
 * cli_out.c - a buffered writer for the programs' output: rows are formatted straight into one
 * large buffer that goes out in a single write(2) when it fills or when the caller flushes (the
 * sluice tail loop flushes whenever its queue runs dry), so output costs no syscall per line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

int cli_out_init(cli_out *o, int fd, size_t cap)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	if ((o->buf = malloc(cap)) == NULL)
		return -ENOMEM;
	o->cap = cap;
	return 0;
}

int cli_out_flush(cli_out *o)
{
	size_t off = 0;
	ssize_t n;

	while (off < o->len && o->err == 0) {
		n = write(o->fd, o->buf + off, o->len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			o->err = -errno;
			break;
		}
		off += (size_t)n;
	}
	o->len = 0;
	return o->err;
}

int cli_out_fini(cli_out *o)
{
	int rc = cli_out_flush(o);

	free(o->buf);
	o->buf = NULL;
	o->cap = 0;
	return rc;
}

void cli_out_put(cli_out *o, const void *p, size_t n)
{
	const char *s = p;
	size_t k;

	while (n > 0) {
		if (o->len == o->cap)
			cli_out_flush(o);
		k = o->cap - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

void cli_out_str(cli_out *o, const char *s)
{
	cli_out_put(o, s, strlen(s));
}

void cli_out_char(cli_out *o, char c)
{
	if (o->len == o->cap)
		cli_out_flush(o);
	o->buf[o->len++] = c;
}

void cli_out_u64(cli_out *o, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	cli_out_put(o, tmp + i, sizeof(tmp) - i);
}

void cli_out_i64(cli_out *o, int64_t v)
{
	if (v < 0) {
		cli_out_char(o, '-');
		cli_out_u64(o, (uint64_t)0 - (uint64_t)v);
	} else {
		cli_out_u64(o, (uint64_t)v);
	}
}
