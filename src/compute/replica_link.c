/*
 * replica_link.c - the compute client as a storage standby's replica link: the Replica frame
 * that declares the standby after every Hello, and its ReplicaAck acknowledgements.  Storage
 * then serves the link's subscriptions up to each worker's upper and sends Watermark frames,
 * which arrive as SL_EV_WATERMARK (input.c, queue.c).  Used by src/replica only.
 */
#include <stdlib.h>
#include <string.h>

#include "compute/conn.h"

int sli_client_replica(sl_client *c, const char *member)
{
	if (c == NULL || member == NULL || member[0] == '\0' || strlen(member) >= SLI_ADDR_MAX)
		return SL_EARG;
	sli_cmd *cmd = calloc(1, sizeof(*cmd));
	if (cmd == NULL)
		return SL_ENOMEM;
	pthread_mutex_lock(&c->mu);
	memcpy(c->replica_member, member, strlen(member) + 1);
	pthread_mutex_unlock(&c->mu);
	cmd->kind = SLI_CMD_REPLICA;
	sli_client_post(c, cmd);
	return 0;
}

int sli_client_replica_ack(sl_client *c, uint64_t source, uint32_t worker, uint64_t upper)
{
	if (c == NULL)
		return SL_EARG;
	sli_cmd *cmd = calloc(1, sizeof(*cmd));
	if (cmd == NULL)
		return SL_ENOMEM;
	cmd->kind = SLI_CMD_REPLICA_ACK;
	cmd->seq = source;
	cmd->gen = worker;
	cmd->bytes = upper;
	sli_client_post(c, cmd);
	return 0;
}

int sli_replica_after_hello(sl_client *c, sli_buf *out)
{
	char member[SLI_ADDR_MAX];
	pthread_mutex_lock(&c->mu);
	memcpy(member, c->replica_member, sizeof(member));
	pthread_mutex_unlock(&c->mu);
	if (member[0] == '\0')
		return 0;
	sli_frame f = {.type = SLI_REPLICA};
	f.u.replica.member = (sl_bytes){(const uint8_t *)member, strlen(member)};
	return sli_frame_encode(out, &f);
}
