/*
 * replica.h - the standby part's own interface between its files (src/replica only).  The
 * public entry point, sl_storage_follow, is declared in sluice/storage.h.
 */
#ifndef SLUICE_REPLICA_H
#define SLUICE_REPLICA_H

#include "sluice/compute.h"
#include "sluice/storage.h"

/* Sets the TLS and token fields of a client configuration for st's own outgoing connections
 * (the standby's follower); the strings stay st's (valid until sl_storage_close). */
void sli_replica_client_config(const sl_storage *st, sl_client_config *cfg);

#endif
