/*
 * cli_ingest_stream.c - `sluice ingest --stream`: stdin read as it arrives, each line appended
 * through a producer (batches cut by rows, bytes, linger), each batch's time printed in input
 * order as storage acknowledges it.  A bad line ends the input: the batches before it are
 * waited for and printed, the open batch holding it is dropped.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sluice/compute.h"

/* Input buffer: holds any valid line (an escaped row doubles at most, plus DIFF<TAB>). */
#define BUF_SIZE (1u << 20)

typedef struct stream {
	sl_producer *p;
	uint32_t processes;
	size_t *first_line; /* [nfirst]: the first input line of batch b at b % nfirst */
	size_t nfirst;
	uint64_t last_batch; /* the batch the last line went into */
} stream;

/* Prints one completion.  0, or -1 when the batch was not committed (reason on stderr). */
static int report(stream *st, const sl_completion *cp)
{
	size_t first = st->first_line[cp->batch % st->nfirst];
	unsigned upd;
	int used = 0;

	if (cp->code == 0) {
		printf("%" PRIu64 "\n", cp->time);
		return fflush(stdout) == 0 ? 0 : -1;
	}
	/* storage names the update ("update N: ..."): with one process that is line first+N-1 */
	if (st->processes == 1 && sscanf(cp->message, "update %u: %n", &upd, &used) == 1 &&
	    used > 0 && upd > 0) {
		fprintf(stderr, "line %zu: %s\n", first + upd - 1, cp->message + used);
	} else {
		fprintf(stderr, "line %zu: the batch of lines %zu-%zu was not committed: %s\n", first,
		        first, first + (size_t)cp->rows - 1,
		        *cp->message ? cp->message : sl_strerror(cp->code));
	}
	return -1;
}

/* Waits for the oldest batch and reports it: 0, or -1 (not committed, or nothing to wait for). */
static int wait_one(stream *st)
{
	sl_completion cp;
	return sl_producer_next(st->p, &cp, -1) == 1 ? report(st, &cp) : -1;
}

/* Takes every completion already there. */
static int drain_ready(stream *st)
{
	sl_completion cp;
	while (sl_producer_next(st->p, &cp, 0) == 1)
		if (report(st, &cp) != 0)
			return -1;
	return 0;
}

/* Appends one update, taking completions while the window is full.  0 or -1 (said why). */
static int append(stream *st, const sl_update *up, size_t lineno)
{
	uint64_t b;
	int rc;
	while ((rc = sl_producer_append(st->p, up->diff, up->row, &b)) == SL_EAGAIN ||
	       rc == SL_EREJECTED)
		if (wait_one(st) != 0) /* SL_EREJECTED: a failed batch is waiting to be reported */
			return -1;
	if (rc != 0) {
		fprintf(stderr, "line %zu: %s\n", lineno, sl_strerror(rc));
		return -1;
	}
	if (b != st->last_batch) { /* this line opened batch b */
		st->last_batch = b;
		st->first_line[b % st->nfirst] = lineno;
	}
	return 0;
}

/* Parses and appends every complete line of buf[0, len) (with eof, the unterminated last one
 * too).  Returns the bytes consumed; *status 1 for a bad line, -1 for a failure. */
static size_t feed(stream *st, char *buf, size_t len, int eof, int updates, size_t *lineno,
                   int *status)
{
	size_t off = 0;
	while (off < len) {
		char *nl = memchr(buf + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - buf) : len;
		sl_update up;
		if (nl == NULL && !eof)
			break;
		++*lineno;
		if (cli_ingest_line(buf + off, end - off, updates, *lineno, &up) != 0) {
			*status = 1;
			return off;
		}
		if (append(st, &up, *lineno) != 0) {
			*status = -1;
			return off;
		}
		off = nl ? end + 1 : len;
	}
	return off;
}

int cli_ingest_stream(sl_client *c, uint64_t source, int updates, const sl_producer_config *cfg)
{
	sl_producer_config pc = *cfg;
	stream st = {0};
	char *buf = malloc(BUF_SIZE);
	size_t len = 0, lineno = 0;
	uint64_t cut = 0;
	int rc, eof = 0, status = 0;

	pc.nonblocking = 1; /* one thread: a full window is met by taking completions */
	pc.stop_on_error = 1;
	if (buf == NULL || sl_client_cluster(c, &st.processes) != 0) {
		fprintf(stderr, "sluice: out of memory\n");
		free(buf);
		return 1;
	}
	if ((rc = sl_producer_open(c, source, &pc, &st.p)) != 0) {
		fprintf(stderr, "sluice: cannot open a producer: %s\n", sl_strerror(rc));
		free(buf);
		return 1;
	}
	st.nfirst = 2u * (pc.inflight ? pc.inflight : 8u) + 2u;
	if ((st.first_line = calloc(st.nfirst, sizeof(*st.first_line))) == NULL) {
		fprintf(stderr, "sluice: out of memory\n");
		status = -1;
	}
	while (status == 0) {
		size_t used = feed(&st, buf, len, eof, updates, &lineno, &status);
		memmove(buf, buf + used, len - used);
		len -= used;
		if (status != 0 || eof)
			break;
		if (len == BUF_SIZE) {
			fprintf(stderr, "line %zu: row longer than %u bytes\n", lineno + 1, SL_ROW_MAX);
			status = 1;
			break;
		}
		struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
		                        {.fd = sl_producer_fd(st.p), .events = POLLIN}};
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "sluice: poll: %s\n", strerror(errno));
			status = -1;
			break;
		}
		if (fds[1].revents && drain_ready(&st) != 0) {
			status = -1;
			break;
		}
		if (fds[0].revents) {
			ssize_t got = read(STDIN_FILENO, buf + len, BUF_SIZE - len);
			if (got < 0 && errno != EINTR && errno != EAGAIN) {
				fprintf(stderr, "sluice: cannot read stdin: %s\n", strerror(errno));
				status = -1;
			} else if (got == 0) {
				eof = 1;
			} else if (got > 0) {
				len += (size_t)got;
			}
		}
	}
	/* a bad line: its batch is dropped; otherwise the last batch is cut */
	if (status >= 0) {
		long long d;
		while ((d = status ? sl_producer_discard(st.p) : sl_producer_flush(st.p)) == SL_EAGAIN ||
		       d == SL_EREJECTED)
			if (wait_one(&st) != 0) {
				status = -1;
				break;
			}
		if (status >= 0 && d < 0) {
			fprintf(stderr, "sluice: %s\n", sl_strerror((int)d));
			status = -1;
		}
	}
	while (status >= 0 && sl_producer_pending(st.p, &cut, NULL) == 0 && cut > 0)
		if (wait_one(&st) != 0)
			status = -1;
	sl_producer_close(st.p);
	free(st.first_line);
	free(buf);
	return status == 0 ? 0 : 1;
}
