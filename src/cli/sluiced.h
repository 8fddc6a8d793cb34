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

/* ---- leadership in etcd (sluiced_etcd.c) ---- */

#include "sluice/storage.h"
#include "sources/sources.h"

/* What a candidate under etcd starts with: the sources it runs once it leads. */
typedef struct sluiced_etcd {
	const char *endpoints;
	const char *cluster;   /* the --cluster list as given: its hash names the keys */
	uint32_t process;
	const char *self;      /* this candidate's address ("HOST:PORT", its --listen) */
	int64_t lease_ms;
	const char **specs;
	size_t nspecs;
	sli_source_runner **runners; /* [nspecs], filled once it leads */
	struct sli_candidate *cand;
	sl_storage *cand_storage;
	volatile int exit_status;    /* set before the candidate ends the process */
} sluiced_etcd;

/* Checks --etcd's arguments: self must be an address of the entry.  0, or 2 after one line on
 * stderr. */
int sluiced_etcd_check(const sluiced_etcd *e, const char *entry);
/* Starts the candidate on st (started, cfg.coordinated): it follows or campaigns.  0, or 1 after
 * an error line.  When it ends (leadership lost, another leader), the process gets SIGTERM and
 * e->exit_status is 75 (EX_TEMPFAIL: restart it). */
int sluiced_etcd_start(sluiced_etcd *e, sl_storage *st);
/* Stops the candidate (a leader resigns), then the sources it started. */
void sluiced_etcd_stop(sluiced_etcd *e);
