/*
 * tls.c - the OpenSSL side of tls.h, and the token file reader.
 *
 * OpenSSL writes to the socket with write(2), not send(MSG_NOSIGNAL): a peer that went away
 * would raise SIGPIPE in a program that embeds libsluice.  Every call that may write blocks
 * SIGPIPE on the calling thread for its duration and swallows one it raised.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "net/loop.h"
#include "sluice/sluice.h"

#define TOKEN_MAX 4096

/* app data of a client SSL: where its handshake stands (see sli_tls_handshake) */
#define CH_SENT ((void *)1)  /* ClientHello sent, the server's first byte not seen yet */
#define CH_TLS ((void *)2)   /* the server answers in TLS */

static _Thread_local char last_error[256];

const char *sli_tls_last_error(void)
{
	return last_error;
}

/* Keeps the reason of a failed read or write for sli_tls_last_error. */
static void note_error(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(last_error, sizeof(last_error), "%s", r ? r : "TLS protocol error");
	ERR_clear_error();
}

typedef struct pipe_guard {
	sigset_t old;
	int was_pending;
} pipe_guard;

static void pipe_block(pipe_guard *g)
{
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void pipe_restore(pipe_guard *g)
{
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pending);
	if (!g->was_pending && sigismember(&pending, SIGPIPE)) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* The first queued OpenSSL error, as "what: reason". */
static int ssl_fail(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	if (e != 0) {
		const char *r = ERR_reason_error_string(e);
		if (r == NULL) {
			ERR_error_string_n(e, buf, sizeof(buf));
			r = buf;
		}
		snprintf(err, errlen, "%s: %s", what, r);
	} else {
		snprintf(err, errlen, "%s", what);
	}
	ERR_clear_error();
	return SL_ETLS;
}

static SSL_CTX *ctx_new(const SSL_METHOD *m)
{
	SSL_CTX *ctx = SSL_CTX_new(m);
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* a peer that closes without close_notify has just closed (sluice frames are complete
	 * or ignored; a truncation cannot pass for a frame) */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	return ctx;
}

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
	char what[512];
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(what, sizeof(what), "cannot load the certificate %s", cert);
		return ssl_fail(err, errlen, what);
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "cannot load the private key %s", key);
		return ssl_fail(err, errlen, what);
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof(what), "the key %s does not match the certificate %s", key, cert);
		return ssl_fail(err, errlen, what);
	}
	return 0;
}

int sli_tls_server_ctx(const char *cert, const char *key, const char *client_ca, SSL_CTX **out,
                       char *err, size_t errlen)
{
	char what[512];
	int rc;
	if (cert == NULL || key == NULL) {
		snprintf(err, errlen, "TLS needs both a certificate and a key");
		return SL_ETLS;
	}
	SSL_CTX *ctx = ctx_new(TLS_server_method());
	if (ctx == NULL)
		return ssl_fail(err, errlen, "cannot create a TLS context");
	if ((rc = load_pair(ctx, cert, key, err, errlen)) != 0)
		goto err_free;
	if (client_ca != NULL) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
		if (names == NULL || SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
			if (names)
				sk_X509_NAME_pop_free(names, X509_NAME_free);
			snprintf(what, sizeof(what), "cannot load the client CA %s", client_ca);
			rc = ssl_fail(err, errlen, what);
			goto err_free;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	*out = ctx;
	return 0;
err_free:
	SSL_CTX_free(ctx);
	return rc;
}

int sli_tls_client_ctx(const char *ca, const char *cert, const char *key, SSL_CTX **out,
                       char *err, size_t errlen)
{
	char what[512];
	int rc;
	if (ca == NULL) {
		snprintf(err, errlen, "TLS needs a CA to verify the server with (--tls-ca)");
		return SL_ETLS;
	}
	if ((cert == NULL) != (key == NULL)) {
		snprintf(err, errlen, "a client certificate needs both --tls-cert and --tls-key");
		return SL_ETLS;
	}
	SSL_CTX *ctx = ctx_new(TLS_client_method());
	if (ctx == NULL)
		return ssl_fail(err, errlen, "cannot create a TLS context");
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		snprintf(what, sizeof(what), "cannot load the CA %s", ca);
		rc = ssl_fail(err, errlen, what);
		goto err_free;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cert != NULL && (rc = load_pair(ctx, cert, key, err, errlen)) != 0)
		goto err_free;
	*out = ctx;
	return 0;
err_free:
	SSL_CTX_free(ctx);
	return rc;
}

SSL *sli_tls_new(SSL_CTX *ctx, int fd, int server, const char *hostport)
{
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1)
		goto err_free;
	if (server) {
		SSL_set_accept_state(ssl);
		return ssl;
	}
	SSL_set_connect_state(ssl);
	if (hostport != NULL) {
		char host[256];
		const char *colon = strrchr(hostport, ':');
		size_t n = colon ? (size_t)(colon - hostport) : strlen(hostport);
		if (n >= sizeof(host))
			n = sizeof(host) - 1;
		memcpy(host, hostport, n);
		host[n] = '\0';
		if (host[0] == '\0')
			snprintf(host, sizeof(host), "127.0.0.1");
		struct in_addr ip;
		if (inet_pton(AF_INET, host, &ip) == 1) {
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
				goto err_free;
		} else if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1) {
			goto err_free;
		}
	}
	return ssl;
err_free:
	SSL_free(ssl);
	ERR_clear_error();
	return NULL;
}

static int not_tls(char *err, size_t errlen)
{
	snprintf(err, errlen, "the server does not speak TLS (it answered in plaintext: is it "
	         "running without --tls-cert?)");
	return SL_ETLS;
}

int sli_tls_handshake(SSL *ssl, char *err, size_t errlen)
{
	char what[300];
	int server = SSL_is_server(ssl);
	if (!server && SSL_get_app_data(ssl) == CH_SENT) {
		/* A sluice server without TLS answers a ClientHello with a plaintext Error frame
		 * (whose first byte is never a TLS record type): name that before OpenSSL does. */
		uint8_t b;
		ssize_t n = recv(SSL_get_fd(ssl), &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return SLI_READ;
		if (n == 1 && b != SLI_TLS_HANDSHAKE_BYTE && b != 0x15 /* alert */)
			return not_tls(err, errlen);
		SSL_set_app_data(ssl, CH_TLS);
	}
	pipe_guard g;
	pipe_block(&g);
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(ssl);
	int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
	int saved = errno;
	pipe_restore(&g);
	switch (e) {
	case SSL_ERROR_NONE:
		return 0;
	case SSL_ERROR_WANT_READ:
		if (!server && SSL_get_app_data(ssl) == NULL)
			SSL_set_app_data(ssl, CH_SENT);
		return SLI_READ;
	case SSL_ERROR_WANT_WRITE:
		return SLI_WRITE;
	default:
		break;
	}
	long vr = SSL_get_verify_result(ssl);
	if (vr != X509_V_OK) {
		snprintf(err, errlen, "%s certificate verify failed: %s", server ? "client" : "server",
		         X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return SL_ETLS;
	}
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		if (saved != 0)
			snprintf(err, errlen, "TLS handshake failed: %s", strerror(saved));
		else
			snprintf(err, errlen, "the %s closed the connection during the TLS handshake",
			         server ? "client" : "server");
		return SL_ETLS;
	}
	if (!server && e == SSL_ERROR_SSL) {
		/* the server's first bytes were no TLS record (OpenSSL read them before we could
		 * peek: they came together with our ClientHello's round trip) */
		int reason = ERR_GET_REASON(ERR_peek_error());
		if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
		    reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_RECORD_LENGTH_MISMATCH) {
			ERR_clear_error();
			return not_tls(err, errlen);
		}
	}
	snprintf(what, sizeof(what), "TLS handshake failed");
	return ssl_fail(err, errlen, what);
}

int sli_tls_connect(SSL_CTX *ctx, int fd, const char *hostport, uint64_t deadline, SSL **out,
                    char *err, size_t errlen)
{
	SSL *ssl = sli_tls_new(ctx, fd, 0, hostport);
	if (ssl == NULL) {
		snprintf(err, errlen, "cannot set up TLS for %s", hostport ? hostport : "the server");
		return SL_ENOMEM;
	}
	for (;;) {
		int r = sli_tls_handshake(ssl, err, errlen);
		if (r == 0)
			break;
		if (r < 0) {
			SSL_free(ssl);
			return r;
		}
		uint64_t now = sli_now_ms();
		if (now >= deadline) {
			snprintf(err, errlen, "TLS handshake timed out");
			SSL_free(ssl);
			return SL_ETIMEDOUT;
		}
		struct pollfd p = {.fd = fd, .events = r == SLI_READ ? POLLIN : POLLOUT};
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			SSL_free(ssl);
			return -errno;
		}
	}
	*out = ssl;
	return 0;
}

ssize_t sli_tls_read(SSL *ssl, void *buf, size_t n)
{
	size_t got = 0;
	pipe_guard g;
	pipe_block(&g); /* a read may answer a key update */
	while (got < n) {
		int chunk = n - got > INT_MAX ? INT_MAX : (int)(n - got);
		ERR_clear_error();
		errno = 0;
		int r = SSL_read(ssl, (uint8_t *)buf + got, chunk);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		int e = SSL_get_error(ssl, r), saved = errno;
		if (got > 0)
			break; /* the error (or end) is reported by the next call */
		pipe_restore(&g);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			errno = EAGAIN;
			return -1;
		}
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
			if (saved == 0)
				return 0;
			errno = saved;
			return -1;
		}
		note_error();
		errno = EPROTO;
		return -1;
	}
	pipe_restore(&g);
	return (ssize_t)got;
}

ssize_t sli_tls_write(SSL *ssl, const void *buf, size_t n)
{
	pipe_guard g;
	int chunk = n > INT_MAX ? INT_MAX : (int)n;
	if (chunk == 0)
		return 0;
	pipe_block(&g);
	ERR_clear_error();
	errno = 0;
	int r = SSL_write(ssl, buf, chunk);
	int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, r), saved = errno;
	pipe_restore(&g);
	if (r > 0)
		return r;
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_SSL) {
		note_error();
		errno = EPROTO;
		return -1;
	}
	ERR_clear_error();
	errno = e == SSL_ERROR_SYSCALL && saved != 0 ? saved : EPIPE;
	return -1;
}

void sli_tls_free(SSL *ssl)
{
	SSL_free(ssl);
}

int sli_token_load(const char *path, char **out, char *err, size_t errlen)
{
	struct stat st;
	char *tok;
	ssize_t n;
	size_t len = 0;
	int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open the token file %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot stat the token file %s: %s", path, strerror(errno));
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = SL_EARG;
		snprintf(err, errlen, "the token file %s is not a regular file", path);
		goto err_close;
	}
	if (st.st_mode & 077) {
		rc = SL_EARG;
		snprintf(err, errlen, "the token file %s is accessible by group or others (mode %04o): "
		         "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		goto err_close;
	}
	if ((tok = malloc(TOKEN_MAX + 2)) == NULL) {
		rc = SL_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto err_close;
	}
	while (len < TOKEN_MAX + 1 && (n = read(fd, tok + len, TOKEN_MAX + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "cannot read the token file %s: %s", path, strerror(errno));
			goto err_free;
		}
		len += (size_t)n;
	}
	while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r'))
		len--;
	rc = SL_EARG;
	if (len > TOKEN_MAX) {
		snprintf(err, errlen, "the token in %s is longer than %d bytes", path, TOKEN_MAX);
		goto err_free;
	}
	if (len == 0) {
		snprintf(err, errlen, "the token file %s is empty", path);
		goto err_free;
	}
	if (memchr(tok, '\0', len) != NULL) {
		snprintf(err, errlen, "the token in %s contains a NUL byte", path);
		goto err_free;
	}
	tok[len] = '\0';
	close(fd);
	*out = tok;
	return 0;
err_free:
	free(tok);
err_close:
	close(fd);
	return rc;
}
