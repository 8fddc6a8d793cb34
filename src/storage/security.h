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

struct sli_security {
	SSL_CTX *server;  /* the listener speaks TLS; NULL: plaintext */
	SSL_CTX *client;  /* the outgoing connections speak TLS; NULL: plaintext */
	char *tls_ca, *tls_cert, *tls_key; /* copies, for the follower's client configuration
	                                   * (sli_storage_client_identity, replica_hooks.h) */
	char *token;      /* own token for outgoing connections, or NULL */
	sli_auth auth;
	uint64_t warned_ms; /* network thread: when a failed handshake was last reported */
};

/* Builds the runtime's security state from cfg (files read now).  0 with *out, or SL_ETLS /
 * SL_EARG / SL_ENOMEM with the reason set by sli_storage_set_error. */
int sli_security_new(const sl_storage_config *cfg, struct sli_security **out);
/* Accepts NULL. */
void sli_security_free(struct sli_security *s);

#endif
