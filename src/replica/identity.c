/*
 * identity.c - who the standby is when it connects to its primary: the TLS files and token of
 * its storage runtime, put into the compute client's configuration.
 */
#include "replica/replica.h"

#include <stddef.h>

#include "storage/replica_hooks.h"

void sli_replica_client_config(const sl_storage *st, sl_client_config *cfg)
{
	const char *ca, *cert, *key, *token;
	sli_storage_client_identity(st, &ca, &cert, &key, &token);
	if (ca != NULL) { /* the runtime's outgoing connections speak TLS */
		cfg->tls_ca = ca;
		cfg->tls_cert = cert;
		cfg->tls_key = key;
	}
	cfg->auth_token = token;
}
