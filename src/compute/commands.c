/*
 * commands.c - runs, on the runtime thread, each command a caller thread posted: Subscribe,
 * Unsubscribe and Credit here; ListSources and Append by the files that own those requests.
 *
 * A command posted during an outage is run against the connection as it is: a Subscribe is
 * parked until the connection is back, a request fails at once (it is never resent).
 */
#include "compute/conn.h"

#include <string.h>

void sli_run_cmd(sl_client *c, sli_cmd *cmd)
{
	sli_csub *s = cmd->sub;
	sli_conn *k = s ? &c->conns[s->proc] : &c->conns[cmd->proc < c->nconns ? cmd->proc : 0];
	sli_frame f;
	memset(&f, 0, sizeof(f));
	if (s == NULL && (cmd->kind == SLI_CMD_SUB || cmd->kind == SLI_CMD_UNSUB ||
	                  cmd->kind == SLI_CMD_CREDIT))
		return; /* cannot happen: these commands always carry their subscription */
	switch (cmd->kind) {
	case SLI_CMD_SUB:
		/* the command's reference becomes the runtime's */
		if (!k->connected && (!c->dead || c->losing)) {
			/* an outage (or the end of one): subscribed when a connection is back */
			sli_park(k, s, SLI_R_PARKED);
			break;
		}
		if (!k->connected || sli_subscribe_wire(k, s) != 0) {
			sli_qitem *it = k->connected
			                    ? sli_msg_item(SLI_QI_SUBERR, s, SL_ENOMEM, "out of memory", 13)
			                    : sli_msg_item(SLI_QI_DISCONNECTED, NULL, c->dead_code,
			                                   c->dead_msg, strlen(c->dead_msg));
			if (it)
				sli_queue_push(s->q, it);
			sli_release(c, s);
		}
		break;
	case SLI_CMD_UNSUB:
		if (s->rstate == SLI_R_SUBSCRIBING || s->rstate == SLI_R_LIVE) {
			s->rstate = SLI_R_UNSUBSCRIBING;
			f.type = SLI_UNSUBSCRIBE;
			f.u.unsubscribe = (sli_unsubscribe){.dataflow = s->dataflow, .source = s->source,
			                                    .worker = s->worker};
			sli_send_frame(k, &f);
		} else if (sli_is_parked(s)) {
			/* nothing of it is on the wire: storage holds nothing for it */
			sli_release(c, s);
		}
		sli_csub_unref(s);
		break;
	case SLI_CMD_CREDIT:
		/* bytes of an older connection are not owed to the new one */
		if ((s->rstate == SLI_R_SUBSCRIBING || s->rstate == SLI_R_LIVE) && cmd->gen == s->gen) {
			f.type = SLI_CREDIT;
			f.u.credit = (sli_credit){.handle = s->handle, .bytes = cmd->bytes};
			sli_send_frame(k, &f);
		}
		sli_csub_unref(s);
		break;
	case SLI_CMD_LIST:
		sli_send_list(c, cmd);
		break;
	case SLI_CMD_APPEND:
		if (sli_send_append(k, cmd))
			return; /* queued: freed once written */
		break;
	case SLI_CMD_REPLICA:
		if (k->connected && sli_replica_after_hello(c, &k->out) != 0)
			sli_conn_lost(k, SL_ENOMEM, "out of memory encoding a Replica frame");
		break;
	case SLI_CMD_REPLICA_ACK:
		if (k->connected) {
			f.type = SLI_REPLICA_ACK;
			f.u.replica_ack = (sli_replica_ack){.source = cmd->seq, .worker = cmd->gen,
			                                    .upper = cmd->bytes};
			sli_send_frame(k, &f);
		}
		break;
	}
	sli_cmd_free(cmd);
}
