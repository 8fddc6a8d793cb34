/*
 * sluiced.h - the parts of the sluiced program outside its argument handling (sluiced_*.c,
 * compiled into sluiced only).
 */
#ifndef SLUICE_SLUICED_H
#define SLUICE_SLUICED_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* ---- running as a service (sluiced_service.c) ---- */

/* Opens PATH for appending (created mode 0640) and makes it the process's stderr, where the
 * event log writes.  0, or -errno (stderr unchanged). */
int sluiced_log_open(const char *path);

/* Blocks until SIGINT or SIGTERM arrives and returns it.  Meanwhile: every SIGHUP reopens the
 * log file (when path is set: a rotated file is replaced by a new one; if it cannot be opened,
 * a log line says so and the old one is kept) and then calls reload(arg) when set; and when
 * the service manager asked for a watchdog, WATCHDOG=1 goes out at half its interval, provided
 * alive(arg) (when set) says the runtime still makes progress.  `sigs` must hold SIGINT,
 * SIGTERM and SIGHUP, blocked in every thread. */
int sluiced_wait(const sigset_t *sigs, const char *log_path, void (*reload)(void *arg),
                 int (*alive)(void *arg), void *arg);

/* sl_storage_config.progress: says, at most once a second (SLUICE_PROGRESS_INTERVAL_MS), which
 * worker and segment the recovery is at, in the event log and the service manager's STATUS. */
void sluiced_recovery_progress(void *arg, const char *source, uint32_t worker, uint32_t workers,
                               size_t segment, size_t segments);

#endif
