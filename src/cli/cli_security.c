/*
 * cli_security.c - the TLS and token options shared by sluice's commands and sluiced
 * (--tls-ca, --tls-cert, --tls-key, --tls-client-ca, --auth-token-file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "net/tls.h"

cli_security cli_sec;

int cli_security_opt(cli_security *s, const char *name, const char *val)
{
	if (strcmp(name, "tls-ca") == 0)
		s->tls_ca = val;
	else if (strcmp(name, "tls-cert") == 0)
		s->tls_cert = val;
	else if (strcmp(name, "tls-key") == 0)
		s->tls_key = val;
	else if (strcmp(name, "tls-client-ca") == 0)
		s->tls_client_ca = val;
	else if (strcmp(name, "auth-token-file") == 0)
		s->token_file = val;
	else
		return 0;
	return 1;
}

int cli_security_load(cli_security *s, char *err, size_t errlen)
{
	if ((s->tls_cert == NULL) != (s->tls_key == NULL)) {
		snprintf(err, errlen, "--tls-cert and --tls-key go together");
		return -1;
	}
	if (s->token_file == NULL || s->token != NULL)
		return 0;
	return sli_token_load(s->token_file, &s->token, err, errlen) == 0 ? 0 : -1;
}

void cli_security_fini(cli_security *s)
{
	if (s->token != NULL) {
		memset(s->token, 0, strlen(s->token));
		free(s->token);
		s->token = NULL;
	}
}
