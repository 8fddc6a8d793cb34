/*
 * cli_promote.c - `sluice promote [--server HOST:PORT]`: makes a standby (sluiced --standby-of)
 * the primary.  A raw connection: Hello, Promote, then Promoted(term) or Error, within a
 * deadline.  Prints the new term and exits 0, or one line on stderr and exits 1 (2 for bad
 * arguments).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "net/sock.h"
#include "net/tls.h"
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
	"received from the primary yet is not on it.\n"
	"\n"
	"  --server HOST:PORT   the standby (default 127.0.0.1:6876)\n"
	CLI_SECURITY_HELP;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int send_all(int fd, SSL *ssl, const sli_buf *b, uint64_t deadline)
{
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = sli_io_send(fd, ssl, b->ptr + off, b->len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			uint64_t now = now_ms();
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			if (now >= deadline || poll(&p, 1, (int)(deadline - now)) == 0)
				return SL_ETIMEDOUT;
			continue;
		}
		return n < 0 ? -errno : SL_EDISCONNECTED;
	}
	return 0;
}

/* Reads until one frame other than Ping/Hello is decoded into *f (pointing into buf). */
static int next_frame(int fd, SSL *ssl, uint8_t *buf, size_t cap, size_t *len, sli_frame *f, int want_hello,
                      uint64_t deadline)
{
	for (;;) {
		ssize_t r = sli_frame_decode(buf, *len, (uint32_t)cap - 8, f);
		if (r < 0)
			return (int)r;
		if (r > 0) {
			int skip = f->type == SLI_PING || (!want_hello && f->type == SLI_HELLO);
			if (!skip)
				return (int)r;
			memmove(buf, buf + r, *len - (size_t)r);
			*len -= (size_t)r;
			continue;
		}
		if (*len == cap)
			return SL_ETOOBIG;
		ssize_t n = sli_io_read(fd, ssl, buf + *len, cap - *len);
		if (n > 0) {
			*len += (size_t)n;
			continue;
		}
		if (n == 0)
			return SL_EDISCONNECTED;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		uint64_t now = now_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) == 0)
			return SL_ETIMEDOUT;
	}
}

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
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	if (cli_security_load(&cli_sec, err, sizeof(err)) != 0) {
		fprintf(stderr, "sluice: %s\n", err);
		return 1;
	}
	if ((cli_sec.tls_ca || cli_sec.tls_cert) &&
	    sli_tls_client_ctx(cli_sec.tls_ca, cli_sec.tls_cert, cli_sec.tls_key, &ctx, err,
	                       sizeof(err)) != 0) {
		fprintf(stderr, "sluice: %s\n", err);
		return 1;
	}
	uint64_t deadline = now_ms() + PROMOTE_TIMEOUT_MS;
	int fd = sli_connect_tcp(server, PROMOTE_TIMEOUT_MS / 2);
	if (fd < 0) {
		fprintf(stderr, "sluice: cannot connect to %s: %s\n", server, sl_strerror(fd));
		SSL_CTX_free(ctx);
		return 1;
	}
	if (ctx != NULL && sli_tls_connect(ctx, fd, server, deadline, &ssl, err, sizeof(err)) != 0) {
		fprintf(stderr, "sluice: cannot connect to %s: TLS failed: %s\n", server, err);
		SSL_CTX_free(ctx);
		close(fd);
		return 1;
	}
	size_t cap = 1u << 16, len = 0;
	uint8_t *buf = malloc(cap);
	sli_buf out;
	sli_frame f;
	int rc, status = 1;
	sli_buf_init(&out);
	if (buf == NULL) {
		sli_tls_free(ssl);
		SSL_CTX_free(ctx);
		close(fd);
		return 1;
	}
	sli_frame hello = {.type = SLI_HELLO};
	hello.u.hello = (sli_hello){.magic = SLI_MAGIC, .version = SLI_PROTO_VERSION,
	                            .session = (uint64_t)getpid() ^ now_ms(),
	                            .name = {(const uint8_t *)"sluice promote", 14}};
	if (cli_sec.token != NULL) {
		hello.u.hello.flags = SLI_HELLO_TOKEN;
		hello.u.hello.token = (sl_bytes){(const uint8_t *)cli_sec.token, strlen(cli_sec.token)};
	}
	sli_frame promote = {.type = SLI_PROMOTE};
	if ((rc = sli_frame_encode(&out, &hello)) != 0 || (rc = sli_frame_encode(&out, &promote)) != 0 ||
	    (rc = send_all(fd, ssl, &out, deadline)) != 0) {
		fprintf(stderr, "sluice: cannot send to %s: %s\n", server, sl_strerror(rc));
		goto out;
	}
	if ((rc = next_frame(fd, ssl, buf, cap, &len, &f, 1, deadline)) < 0) {
		fprintf(stderr, "sluice: no answer from %s: %s\n", server, sl_strerror(rc));
		goto out;
	}
	if (f.type == SLI_HELLO) {
		memmove(buf, buf + rc, len - (size_t)rc);
		len -= (size_t)rc;
		rc = next_frame(fd, ssl, buf, cap, &len, &f, 0, deadline);
		if (rc < 0) {
			fprintf(stderr, "sluice: no answer to Promote from %s: %s\n", server, sl_strerror(rc));
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
	sli_tls_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	cli_security_fini(&cli_sec);
	return status;
}
