/*
 * switchover.c - `sluice promote` under a coordinator (sluiced --etcd): a graceful handover of
 * the leadership to this standby.  The Promote frame cannot be answered at once: it becomes a
 * request the candidate polls (sl_storage_switchover_requested) and passes on through etcd;
 * the connection gets Promoted(term) once this process leads (sl_storage_set_leader), or an
 * error when that has not happened within SWITCH_MS.  Network thread, but for the poll.
 */
#include <stdio.h>

#include "storage/conn.h"
#include "storage/storage_int.h"

#define SWITCH_MS 9000 /* below sluice promote's 10 s */

void sli_switchover_request(struct conn *c)
{
	sl_storage *st = c->st;
	if (!sl_storage_is_standby(st)) {
		sli_conn_error(c, SL_EREJECTED, 0, "this process leads already (term %llu)",
		               (unsigned long long)atomic_load(&st->term));
		return;
	}
	size_t i;
	for (i = 0; i < SLI_SWITCH_WAITERS && st->switch_conn[i] != 0; i++)
		;
	if (i == SLI_SWITCH_WAITERS) {
		sli_conn_error(c, SL_ELIMIT, 0, "too many promotes waiting");
		return;
	}
	st->switch_conn[i] = c->id;
	st->switch_deadline = sli_now_ms() + SWITCH_MS;
	atomic_store(&st->switch_wanted, 1);
}

static struct conn *conn_by_id(sl_storage *st, uint64_t id)
{
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (c->id == id && !c->dead && !c->closing)
			return c;
	return NULL;
}

void sli_switchover_tick(sl_storage *st)
{
	int led = !sl_storage_is_standby(st), late = sli_now_ms() > st->switch_deadline;
	if (!led && !late)
		return;
	for (size_t i = 0; i < SLI_SWITCH_WAITERS; i++) {
		if (st->switch_conn[i] == 0)
			continue;
		struct conn *c = conn_by_id(st, st->switch_conn[i]);
		st->switch_conn[i] = 0;
		if (c == NULL)
			continue;
		if (led) {
			sli_frame p = {.type = SLI_PROMOTED};
			p.u.promoted.term = atomic_load(&st->term);
			sli_conn_put_frame(c, &p);
		} else {
			sli_conn_error(c, SL_ETIMEDOUT, 0, "the leader did not hand over within %u s (is "
			               "this standby in sync, and etcd reachable?)", SWITCH_MS / 1000);
		}
	}
	atomic_store(&st->switch_wanted, 0);
	st->switch_deadline = 0;
}

SL_API int sl_storage_switchover_requested(sl_storage *st)
{
	return st != NULL && atomic_load(&st->switch_wanted);
}
