/*
 * security.c - security.h: the storage runtime's TLS contexts and token, and the check of a
 * client's first frame.
 */
#include "storage/security.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "net/tls.h"
#include "storage/storage_int.h"

int sli_auth_init(sli_auth *a, const char *token)
{
	memset(a, 0, sizeof(*a));
	if (token == NULL)
		return 0;
	if (token[0] == '\0')
		return SL_EARG;
	SHA256((const unsigned char *)token, strlen(token), a->digest);
	a->enabled = 1;
	return 0;
}

int sli_hello_check(const sli_auth *a, const sli_frame *f, char *msg, size_t msglen)
{
	if (f->type != SLI_HELLO) {
		if (a->enabled) {
			snprintf(msg, msglen, "authentication failed: expected Hello with a token, got %s",
			         sli_frame_type_name(f->type));
			return SL_EAUTH;
		}
		snprintf(msg, msglen, "expected Hello, got %s", sli_frame_type_name(f->type));
		return SL_EPROTO;
	}
	const sli_hello *h = &f->u.hello;
	if (h->magic != SLI_MAGIC) {
		snprintf(msg, msglen, "not a sluice client (bad magic in Hello)");
		return SL_EPROTO;
	}
	if (h->version != SLI_PROTO_VERSION) {
		snprintf(msg, msglen, "protocol version %u is not supported (this server speaks %u)",
		         (unsigned)h->version, (unsigned)SLI_PROTO_VERSION);
		return SL_EVERSION;
	}
	if (!a->enabled)
		return 0;
	if (!(h->flags & SLI_HELLO_TOKEN)) {
		snprintf(msg, msglen, "authentication failed: this server requires a token "
		         "(--auth-token-file)");
		return SL_EAUTH;
	}
	uint8_t d[32];
	SHA256(h->token.len ? h->token.ptr : (const uint8_t *)"", h->token.len, d);
	if (CRYPTO_memcmp(d, a->digest, sizeof(d)) != 0) {
		snprintf(msg, msglen, "authentication failed: wrong token");
		return SL_EAUTH;
	}
	return 0;
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (s != NULL && (*out = strdup(s)) == NULL)
		return SL_ENOMEM;
	return 0;
}

int sli_security_new(const sl_storage_config *cfg, struct sli_security **out)
{
	char err[512];
	int rc;
	struct sli_security *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return SL_ENOMEM;
	if ((rc = sli_auth_init(&s->auth, cfg->auth_token)) != 0) {
		sli_storage_set_error("the authentication token is empty");
		goto err_free;
	}
	if ((rc = dup_opt(cfg->auth_token, &s->token)) != 0 ||
	    (rc = dup_opt(cfg->tls_ca, &s->tls_ca)) != 0 ||
	    (rc = dup_opt(cfg->tls_cert, &s->tls_cert)) != 0 ||
	    (rc = dup_opt(cfg->tls_key, &s->tls_key)) != 0)
		goto err_free;
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
		rc = SL_EARG;
		sli_storage_set_error("TLS needs both a certificate and a key");
		goto err_free;
	}
	if (cfg->tls_client_ca != NULL && cfg->tls_cert == NULL) {
		rc = SL_EARG;
		sli_storage_set_error("a client CA needs a server certificate and key");
		goto err_free;
	}
	if (cfg->tls_cert != NULL &&
	    (rc = sli_tls_server_ctx(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca, &s->server,
	                             err, sizeof(err))) != 0) {
		sli_storage_set_error("%s", err);
		goto err_free;
	}
	if (cfg->tls_ca != NULL &&
	    (rc = sli_tls_client_ctx(cfg->tls_ca, cfg->tls_cert, cfg->tls_key, &s->client, err,
	                             sizeof(err))) != 0) {
		sli_storage_set_error("%s", err);
		goto err_free;
	}
	*out = s;
	return 0;
err_free:
	sli_security_free(s);
	return rc;
}

void sli_storage_client_identity(const sl_storage *st, const char **tls_ca, const char **tls_cert,
                                 const char **tls_key, const char **token)
{
	const struct sli_security *sec = st->sec;
	int tls = sec->client != NULL;
	*tls_ca = tls ? sec->tls_ca : NULL;
	*tls_cert = tls ? sec->tls_cert : NULL;
	*tls_key = tls ? sec->tls_key : NULL;
	*token = sec->token;
}

void sli_security_free(struct sli_security *s)
{
	if (s == NULL)
		return;
	SSL_CTX_free(s->server);
	SSL_CTX_free(s->client);
	free(s->tls_ca);
	free(s->tls_cert);
	free(s->tls_key);
	if (s->token) {
		OPENSSL_cleanse(s->token, strlen(s->token));
		free(s->token);
	}
	free(s);
}
