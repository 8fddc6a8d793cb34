/*
 * security.h - what a storage runtime needs for TLS and authentication: its TLS contexts, its
 * own token for outgoing connections, and the check of a client's first frame (pure: no I/O,
 * fuzzed by fuzz/fuzz_handshake.c).
 */
#ifndef SLUICE_STORAGE_SECURITY_H
#define SLUICE_STORAGE_SECURITY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <pthread.h>

#include "proto/proto.h"
#include "sluice/storage.h"

/* The expected token, kept only as its SHA-256 digest: comparing two digests of fixed length
 * takes the same time wherever they differ, and whatever the presented token's length. */
typedef struct sli_auth {
	int enabled;
	uint8_t digest[32];
} sli_auth;

/* token NULL: authentication off.  0, or SL_EARG for an empty token. */
int sli_auth_init(sli_auth *a, const char *token);

/* Checks the first frame a client sends.  0: a Hello with the right magic and version (and
 * the right token when a is enabled) that the caller may answer.  Otherwise the code of the
 * fatal Error to send (SL_EAUTH for any frame before Hello or a missing or wrong token with
 * authentication on, SL_EPROTO for a non-Hello frame without it or a bad magic, SL_EVERSION)
 * and its message in msg. */
int sli_hello_check(const sli_auth *a, const sli_frame *f, char *msg, size_t msglen);

/* A reload (sli_security_reload, from any thread) swaps the contexts, the token and the digest
 * under mu while the network thread, the probes and the follower read them: every reader goes
 * through the functions below.  Whether the listener and the outgoing connections speak TLS,
 * whether authentication is on, and the file names are fixed at creation. */
struct sli_security {
	pthread_mutex_t mu;
	SSL_CTX *server;  /* the listener speaks TLS; NULL: plaintext (mu) */
	SSL_CTX *client;  /* the outgoing connections speak TLS; NULL: plaintext (mu) */
	int tls_server, tls_client; /* fixed: server / client != NULL */
	char *tls_ca, *tls_cert, *tls_key, *tls_client_ca; /* copies of the file names */
	char *token;      /* own token for outgoing connections, or NULL (mu) */
	/* Tokens a reload replaced: a reader (a follower connecting) may still hold one, so they
	 * are freed with the state: a few bytes per reload. */
	char **retired;
	size_t nretired;
	sli_auth auth;    /* (mu) */
	uint64_t warned_ms; /* network thread: when a failed handshake was last reported */
};

/* Builds the runtime's security state from cfg (files read now).  0 with *out, or SL_ETLS /
 * SL_EARG / SL_ENOMEM with the reason set by sli_storage_set_error. */
int sli_security_new(const sl_storage_config *cfg, struct sli_security **out);
/* Re-reads the certificate and key files (the same names) into new contexts and replaces the
 * token by `token`.  All or nothing: 0, or SL_ETLS / SL_EARG (authentication cannot be turned
 * on or off, nor a token be empty) / SL_ENOMEM with the reason in err, nothing changed. */
int sli_security_reload(struct sli_security *s, const char *token, char *err, size_t errlen);
/* sli_hello_check against the current token. */
int sli_security_hello_check(struct sli_security *s, const sli_frame *f, char *msg, size_t msglen);
/* A server-side SSL for an accepted fd from the current certificate (NULL: out of memory). */
SSL *sli_security_server_ssl(struct sli_security *s, int fd);
/* The current client context (a reference the caller drops with SSL_CTX_free; NULL when the
 * outgoing connections are plaintext) and token (valid until sli_security_free). */
void sli_security_client(struct sli_security *s, SSL_CTX **ctx, const char **token);
/* Accepts NULL. */
void sli_security_free(struct sli_security *s);

#endif
