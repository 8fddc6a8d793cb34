/*
 * iter.c - iterating the updates of a MESSAGES event and the changes of a PROGRESS event.
 *
 * The bytes were validated when the runtime decoded the Data frame they came in, so these
 * never meet malformed input; they stop (return 0) if they did.  No allocation.
 */
#include "compute/runtime.h"

void sl_iter_init(sl_iter *it, const sl_event *ev)
{
	if (ev != NULL && (ev->kind == SL_EV_MESSAGES || ev->kind == SL_EV_PROGRESS))
		it->rest = ev->body;
	else
		it->rest = (sl_bytes){NULL, 0};
}

int sl_iter_update(sl_iter *it, sl_bytes *row, int64_t *diff)
{
	return sli_updates_next(&it->rest, diff, row) == 1;
}

int sl_iter_change(sl_iter *it, uint64_t *time, int64_t *delta)
{
	return sli_changes_next(&it->rest, time, delta) == 1;
}
