/*
 * tls.h - TLS (OpenSSL) for both runtimes and the short conversations: contexts built from PEM
 * files, a non-blocking handshake step for the epoll loops, a blocking one with a deadline, and
 * read/write calls that behave like read(2)/send(2) so the plaintext path stays a plain syscall.
 *
 * An SSL object belongs to one thread at a time (the loop thread of its connection).  Nothing
 * here prints: errors come back as SL_ETLS (or -errno) with a one-line reason in a caller's
 * buffer.
 */
#ifndef SLUICE_NET_TLS_H
#define SLUICE_NET_TLS_H

#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/ssl.h>

/* The first byte of a TLS record carrying a handshake message (a ClientHello). */
#define SLI_TLS_HANDSHAKE_BYTE 0x16

/* A server context: certificate chain and key (PEM); with client_ca (PEM, may be NULL) clients
 * must present a certificate signed by one of its CAs.  0 with *out (free with SSL_CTX_free),
 * or SL_ETLS with the reason in err. */
int sli_tls_server_ctx(const char *cert, const char *key, const char *client_ca, SSL_CTX **out,
                       char *err, size_t errlen);

/* A client context: the server is verified against ca (PEM, required); cert and key (both or
 * neither) are presented when the server asks for a client certificate.  As above. */
int sli_tls_client_ctx(const char *ca, const char *cert, const char *key, SSL_CTX **out,
                       char *err, size_t errlen);

/* A new client or server SSL on fd.  A client checks that the server's certificate names the
 * host of hostport (an IP address or a DNS name).  NULL when out of memory. */
SSL *sli_tls_new(SSL_CTX *ctx, int fd, int server, const char *hostport);

/* One step of the handshake on a non-blocking socket: 0 when it is complete, SLI_READ or
 * SLI_WRITE (net/loop.h) for what to wait for, or SL_ETLS with the reason in err.  A client
 * recognises an answer that is not TLS ("the server does not speak TLS"). */
int sli_tls_handshake(SSL *ssl, char *err, size_t errlen);

/* The whole client handshake on a non-blocking fd, waiting with poll until deadline
 * (sli_now_ms()).  0 with *out (free with sli_tls_free), or SL_ETLS / SL_ETIMEDOUT with the
 * reason in err. */
int sli_tls_connect(SSL_CTX *ctx, int fd, const char *hostport, uint64_t deadline, SSL **out,
                    char *err, size_t errlen);

/* Like read(2) on a non-blocking socket: > 0 bytes, 0 at the end of the stream, -1 with errno
 * (EAGAIN: wait for readiness).  It fills buf as far as the socket allows, so a short count
 * means that neither the socket nor OpenSSL holds more (nothing waits in SSL_pending). */
ssize_t sli_tls_read(SSL *ssl, void *buf, size_t n);
/* Like send(2): > 0 bytes taken, or -1 with errno (EAGAIN: wait for writability and call again
 * with at least the same bytes; the buffer may move). */
ssize_t sli_tls_write(SSL *ssl, const void *buf, size_t n);
/* Why the last sli_tls_read or sli_tls_write on this thread failed with EPROTO (e.g. the
 * server's alert "certificate required"); "" if it did not. */
const char *sli_tls_last_error(void);
/* Frees ssl without a close_notify (the socket is the caller's).  Accepts NULL. */
void sli_tls_free(SSL *ssl);

/* The plaintext path costs one branch. */
static inline ssize_t sli_io_read(int fd, SSL *ssl, void *buf, size_t n)
{
	return ssl ? sli_tls_read(ssl, buf, n) : read(fd, buf, n);
}

static inline ssize_t sli_io_send(int fd, SSL *ssl, const void *buf, size_t n)
{
	return ssl ? sli_tls_write(ssl, buf, n) : send(fd, buf, n, MSG_NOSIGNAL);
}

/* Reads an authentication token file: its bytes without the trailing newline(s).  Refuses a
 * missing or unreadable file, an empty token, one with a NUL byte or over 4096 bytes, and a file
 * that group or others may access (as ssh does with keys).  0 with *out (NUL-terminated, free
 * with free), or a negative error with a one-line reason in err. */
int sli_token_load(const char *path, char **out, char *err, size_t errlen);

#endif
