/*
 * disklog_int.h - the state of a durable log, shared by the two files that make it:
 * disklog_recover.c builds it at open (and calls down into disklog.c), disklog.c runs it while
 * the log is open (its chunk ops, sync, markers) and never calls disklog_recover.c.
 *
 * Part-level: only for disklog.c and disklog_recover.c.
 */
#ifndef SLUICE_DISKLOG_INT_H
#define SLUICE_DISKLOG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log/chunks.h"

/* A segment file is named by its base position: 16 lowercase hex digits and ".seg". */
#define SLI_SEG_HEX 16
#define SLI_SEG_SUFFIX ".seg"
#define SLI_SEG_NAME_MAX 24

struct sli_disklog_seg {
	uint64_t base;
	uint8_t *map; /* seg_size bytes, MAP_SHARED */
};

struct sli_disklog {
	int dirfd; /* holds the flock; fsync'ed after segments are created */
	uint64_t seg_size;
	unsigned shift;
	uint64_t start; /* base of segs[0] */
	int (*allocate)(void *arg, int fd, off_t len);
	void *allocate_arg;

	pthread_mutex_t mu; /* segs, nsegs, cap: the writer appends, sync looks up */
	struct sli_disklog_seg *segs;
	size_t nsegs, cap;

	pthread_mutex_t sync_mu; /* serialises sli_log_sync */
	uint64_t synced;         /* every position below it is durable */
	int sync_err;            /* the first sync failure, returned by every later sync */
	atomic_int dir_dirty;    /* a segment was created since the last directory fsync */

	uint64_t recovered_upper;
};

/* The chunk ops of a disk log (owner: its struct sli_disklog), given to sli_log_new_chunked. */
extern const sli_chunk_ops sli_disklog_chunk_ops;

/* The system's page size (4096 if it cannot be read). */
long sli_disklog_page_size(void);
/* Writes the file name of the segment at base. */
void sli_disklog_seg_name(char name[SLI_SEG_NAME_MAX], uint64_t base);
/* Allocates a whole segment's bytes of fd (opts->allocate or posix_fallocate).  0 or a
 * positive errno. */
int sli_disklog_allocate(struct sli_disklog *d, int fd);
/* Appends the mapping of the segment at base to d's list.  0 or SL_ENOMEM. */
int sli_disklog_segs_push(struct sli_disklog *d, uint64_t base, uint8_t *map);
/* Unmaps every segment, closes the directory (releasing its flock) and frees d.  Accepts NULL. */
void sli_disklog_release(struct sli_disklog *d);

#endif
