/*
 * mailbox.c - how caller threads and the runtime thread hand each other work: the command list
 * (callers post, the runtime takes) and the wait for an answer on c->cv.
 *
 * Worker threads talk to the runtime thread only through the command list (c->mu +
 * sli_loop_wake); the runtime fills in answers under c->mu and broadcasts c->cv.  The runtime
 * never waits for a worker.  This file owns c->cmd_head/cmd_tail.
 */
#include "compute/runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

void sli_cmds_append_locked(sl_client *c, sli_cmd *cmd)
{
	cmd->next = NULL;
	if (c->cmd_tail)
		c->cmd_tail->next = cmd;
	else
		c->cmd_head = cmd;
	c->cmd_tail = cmd;
}

void sli_client_post(sl_client *c, sli_cmd *cmd)
{
	pthread_mutex_lock(&c->mu);
	sli_cmds_append_locked(c, cmd);
	pthread_mutex_unlock(&c->mu);
	sli_loop_wake(c->loop);
}

void sli_cmd_free(sli_cmd *cmd)
{
	if (cmd == NULL)
		return;
	sli_buf_fini(&cmd->frames);
	free(cmd);
}

sli_cmd *sli_take_cmds_locked(sl_client *c)
{
	sli_cmd *cmds = c->cmd_head;
	c->cmd_head = c->cmd_tail = NULL;
	return cmds;
}

sli_cmd *sli_take_cmds(sl_client *c)
{
	pthread_mutex_lock(&c->mu);
	sli_cmd *cmds = sli_take_cmds_locked(c);
	pthread_mutex_unlock(&c->mu);
	return cmds;
}

static void deadline_ts(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int sli_wait_answer(sl_client *c, const int *done, int timeout_ms)
{
	struct timespec ts;
	if (timeout_ms >= 0)
		deadline_ts(&ts, timeout_ms);
	while (!*done && !c->dead) {
		if (timeout_ms < 0)
			pthread_cond_wait(&c->cv, &c->mu);
		else if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
			break;
	}
	if (*done)
		return 0;
	if (c->dead) {
		sli_set_last_error("%s", c->dead_msg);
		return SL_EDISCONNECTED;
	}
	return SL_ETIMEDOUT;
}
