/*
 * sluiced_service.c - what sluiced does as a service: say how the recovery of large logs
 * progresses; then, while it serves, wait for a signal to stop, reopen its log file and reload
 * its credentials on SIGHUP, and feed the service manager's watchdog.
 *
 * All of it runs on the main thread, which does nothing else once the runtime started: the
 * signals are blocked everywhere and taken here with sigtimedwait, so no handler ever runs
 * inside a library call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sluiced.h"
#include "common/log.h"

int sluiced_log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	int rc = 0;

	if (fd < 0)
		return -errno;
	/* dup2 swaps the file under fd 2 atomically: a thread writing a log line meanwhile writes
	 * it whole to the old file or the new one. */
	if (dup2(fd, STDERR_FILENO) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_hangup(const char *log_path, void (*reload)(void *arg), void *arg)
{
	int rc;

	if (log_path != NULL) {
		if ((rc = sluiced_log_open(log_path)) != 0) {
			sli_kv kv[] = {{"path", log_path, 0}, {NULL, NULL, 0}};
			sli_elog(SLI_LOG_ERROR, "log_reopen_failed", kv,
			         "SIGHUP: cannot reopen log file %s (%s): still writing to the old one",
			         log_path, strerror(-rc));
		} else {
			sli_kv kv[] = {{"path", log_path, 0}, {NULL, NULL, 0}};
			sli_elog(SLI_LOG_INFO, "log_reopened", kv, "SIGHUP: reopened log file %s", log_path);
		}
	}
	if (reload != NULL)
		reload(arg);
}

int sluiced_wait(const sigset_t *sigs, const char *log_path, void (*reload)(void *arg),
                 int (*alive)(void *arg), void *arg)
{
	uint64_t wd = cli_notify_watchdog_usec(), next_ping = 0, now, left;
	struct timespec ts;
	int sig;

	for (;;) {
		if (wd == 0) {
			if (sigwait(sigs, &sig) != 0)
				continue;
		} else {
			now = now_us();
			if (now >= next_ping) {
				if (alive == NULL || alive(arg))
					cli_notify_watchdog();
				next_ping = now + wd / 2;
			}
			left = next_ping - now;
			ts.tv_sec = (time_t)(left / 1000000u);
			ts.tv_nsec = (long)(left % 1000000u) * 1000;
			if ((sig = sigtimedwait(sigs, NULL, &ts)) < 0)
				continue; /* EAGAIN: time to ping; EINTR: again */
		}
		if (sig == SIGHUP) {
			on_hangup(log_path, reload, arg);
			continue;
		}
		return sig;
	}
}

/* How often recovery progress is said: once a second, unless SLUICE_PROGRESS_INTERVAL_MS says
 * otherwise (tests set 0: every segment). */
static uint64_t progress_interval_ms(void)
{
	const char *v = getenv("SLUICE_PROGRESS_INTERVAL_MS");
	char *end;
	unsigned long long ms;

	if (v == NULL || *v == '\0')
		return 1000;
	ms = strtoull(v, &end, 10);
	return *end == '\0' ? (uint64_t)ms : 1000;
}

void sluiced_recovery_progress(void *arg, const char *source, uint32_t worker, uint32_t workers,
                               size_t segment, size_t segments)
{
	static uint64_t started_ms, last_ms, interval_ms;
	uint64_t now = now_us() / 1000u;
	char w[16], ws[16], sg[24], sgs[24], line[400];

	/* Recovery runs on the main thread before the runtime starts: no other caller. */
	if (started_ms == 0) {
		started_ms = last_ms = now;
		interval_ms = progress_interval_ms();
	}
	if (now - last_ms < interval_ms)
		return;
	last_ms = now;
	snprintf(w, sizeof(w), "%u", worker + 1);
	snprintf(ws, sizeof(ws), "%u", workers);
	snprintf(sg, sizeof(sg), "%zu", segment + 1);
	snprintf(sgs, sizeof(sgs), "%zu", segments);
	sli_kv kv[] = {{"source", source, 0}, {"worker", w, 1}, {"workers", ws, 1},
	               {"segment", sg, 1}, {"segments", sgs, 1}, {NULL, NULL, 0}};
	snprintf(line, sizeof(line), "recovering source %s: worker %s of %s, segment %s of %s",
	         source, w, ws, sg, sgs);
	sli_elog(SLI_LOG_INFO, "recovery_progress", kv, "%s", line);
	cli_notify_status(line);
	(void)arg;
}
