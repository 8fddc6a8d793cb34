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

#define SWAP_CTX(a, b)         \
	do {                   \
		SSL_CTX *t_ = (a); \
		(a) = (b);         \
		(b) = t_;          \
	} while (0)

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
	pthread_mutex_init(&s->mu, NULL);
	if ((rc = sli_auth_init(&s->auth, cfg->auth_token)) != 0) {
		sli_storage_set_error("the authentication token is empty");
		goto err_free;
	}
	if ((rc = dup_opt(cfg->auth_token, &s->token)) != 0 ||
	    (rc = dup_opt(cfg->tls_ca, &s->tls_ca)) != 0 ||
	    (rc = dup_opt(cfg->tls_cert, &s->tls_cert)) != 0 ||
	    (rc = dup_opt(cfg->tls_key, &s->tls_key)) != 0 ||
	    (rc = dup_opt(cfg->tls_client_ca, &s->tls_client_ca)) != 0)
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
	s->tls_server = s->server != NULL;
	s->tls_client = s->client != NULL;
	*out = s;
	return 0;
err_free:
	sli_security_free(s);
	return rc;
}

int sli_security_reload(struct sli_security *s, const char *token, char *err, size_t errlen)
{
	SSL_CTX *server = NULL, *client = NULL;
	char *tok = NULL, **retired;
	sli_auth auth;
	int rc;

	if ((token != NULL) != s->auth.enabled) {
		snprintf(err, errlen, "authentication cannot be turned %s without a restart",
		         token != NULL ? "on" : "off");
		return SL_EARG;
	}
	if ((rc = sli_auth_init(&auth, token)) != 0) {
		snprintf(err, errlen, "the new authentication token is empty");
		return rc;
	}
	if (s->tls_server && (rc = sli_tls_server_ctx(s->tls_cert, s->tls_key, s->tls_client_ca,
	                                              &server, err, errlen)) != 0)
		return rc;
	if (s->tls_client &&
	    (rc = sli_tls_client_ctx(s->tls_ca, s->tls_cert, s->tls_key, &client, err, errlen)) != 0)
		goto fail;
	rc = SL_ENOMEM;
	if (token != NULL && (tok = strdup(token)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_lock(&s->mu); /* also serializes concurrent reloads */
	if ((retired = realloc(s->retired, (s->nretired + 1) * sizeof(*retired))) == NULL) {
		pthread_mutex_unlock(&s->mu);
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->retired = retired;
	SWAP_CTX(s->server, server);
	SWAP_CTX(s->client, client);
	if (s->token != NULL)
		s->retired[s->nretired++] = s->token;
	s->token = tok;
	s->auth = auth;
	pthread_mutex_unlock(&s->mu);
	rc = 0;
	tok = NULL;
fail:
	/* After the swap these are the old contexts: connections using them hold references. */
	SSL_CTX_free(server);
	SSL_CTX_free(client);
	free(tok);
	return rc;
}

int sli_security_hello_check(struct sli_security *s, const sli_frame *f, char *msg, size_t msglen)
{
	sli_auth a;
	pthread_mutex_lock(&s->mu);
	a = s->auth;
	pthread_mutex_unlock(&s->mu);
	return sli_hello_check(&a, f, msg, msglen);
}

SSL *sli_security_server_ssl(struct sli_security *s, int fd)
{
	SSL *ssl;
	pthread_mutex_lock(&s->mu);
	ssl = sli_tls_new(s->server, fd, 1, NULL);
	pthread_mutex_unlock(&s->mu);
	return ssl;
}

void sli_security_client(struct sli_security *s, SSL_CTX **ctx, const char **token)
{
	pthread_mutex_lock(&s->mu);
	*ctx = s->client;
	if (*ctx != NULL)
		SSL_CTX_up_ref(*ctx);
	*token = s->token;
	pthread_mutex_unlock(&s->mu);
}

void sli_storage_client_identity(const sl_storage *st, const char **tls_ca, const char **tls_cert,
                                 const char **tls_key, const char **token)
{
	struct sli_security *sec = st->sec;
	int tls = sec->tls_client;
	*tls_ca = tls ? sec->tls_ca : NULL;
	*tls_cert = tls ? sec->tls_cert : NULL;
	*tls_key = tls ? sec->tls_key : NULL;
	pthread_mutex_lock(&sec->mu);
	*token = sec->token;
	pthread_mutex_unlock(&sec->mu);
}

SL_API int sl_storage_reload_security(sl_storage *st, const char *auth_token)
{
	char err[512];
	int rc;

	if (st == NULL)
		return SL_EARG;
	sli_storage_set_error("%s", "");
	if ((rc = sli_security_reload(st->sec, auth_token, err, sizeof(err))) != 0)
		sli_storage_set_error("%s", err);
	return rc;
}

static void free_token(char *t)
{
	if (t != NULL) {
		OPENSSL_cleanse(t, strlen(t));
		free(t);
	}
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
	free(s->tls_client_ca);
	free_token(s->token);
	for (size_t i = 0; i < s->nretired; i++)
		free_token(s->retired[i]);
	free(s->retired);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
