/*
 * disklog.h - the durable log: the log of log.h kept in memory-mapped segment files.
 *
 * A disk log is an sli_log like any other: sli_log_reserve, sli_log_commit, sli_log_block,
 * sli_log_end, sli_log_start and sli_log_free (log.h) work on it unchanged, with the same
 * threading (one writer, lock-free readers).  What this header adds is opening a directory
 * (with recovery), durability (sli_log_sync), upper markers, and the reason an append failed.
 *
 * What a crash can cost (the caller picks when to call sli_log_sync):
 *   - process crash (SIGKILL, abort, OOM kill): nothing committed.  Blocks are written straight
 *     into MAP_SHARED mappings of the files, so they are in the kernel's page cache the moment
 *     sli_log_commit returns, and the kernel writes them back even if the process is gone.
 *   - machine crash (power loss, kernel panic): everything committed before the last successful
 *     sli_log_sync survives; blocks committed after it may be lost.  Policies built on that:
 *       fsync=always   sli_log_sync before every upper is published: no published upper is lost;
 *       fsync=interval sli_log_sync from a timer: at most one interval of uppers is lost;
 *       fsync=never    the kernel writes back when it likes (about 30 s on Linux by default).
 *     The kernel writes dirty pages back in any order, so the part of the log after the last
 *     sync can come back with holes; open then refuses with SL_EIO naming the file and offset
 *     rather than guessing what was lost (see disklog_recover.c, "Recovery").
 */
#ifndef SLUICE_DISKLOG_H
#define SLUICE_DISKLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log/log.h"

#define SLI_DISKLOG_SEGMENT_DEFAULT ((uint64_t)64 << 20)
#define SLI_DISKLOG_SEGMENT_MIN ((uint64_t)128 << 10) /* must hold a header and SLI_BLOCK_MAX */
#define SLI_DISKLOG_SEGMENT_MAX ((uint64_t)1 << 30)

typedef struct sli_disklog_opts {
	/* Bytes per segment file: a power of two in [SEGMENT_MIN, SEGMENT_MAX]; 0 means
	 * SLI_DISKLOG_SEGMENT_DEFAULT.  A directory must always be opened with the size it was
	 * written with: open refuses files of another size or alignment (SL_EIO naming one),
	 * except that a lone segment smaller than this is taken for a short one and extended. */
	uint64_t segment_size;
	/* Warnings of a successful open ("truncated torn tail at FILE offset N"), one call each, on
	 * the opening thread before sli_disklog_open returns.  NULL: the last one goes to err. */
	void (*warn)(void *arg, const char *msg);
	void *warn_arg;
	/* Called on the opening thread before each segment the recovery walks (index i of n), so
	 * a caller can show the progress of a large log.  NULL: nothing is called. */
	void (*progress)(void *arg, size_t segment, size_t segments);
	void *progress_arg;
	/* Fault injection for tests: allocates len bytes of the new segment file fd (and extends a
	 * short last segment at open) in place of posix_fallocate.  Returns 0 or a positive errno
	 * (ENOSPC, EIO, ...), like posix_fallocate.  NULL: posix_fallocate. */
	int (*allocate)(void *arg, int fd, off_t len);
	void *allocate_arg;
	/* Finishes an interrupted sli_log_truncate_durable before recovery: with `truncate` set,
	 * every segment after the one holding position truncate_at is deleted and that one is
	 * zeroed from it on (synced), as sli_log_truncate_durable(log, truncate_at) would.  Only
	 * for a position the caller recorded durably before it started that truncation, and only
	 * while nothing was appended after it. */
	int truncate;
	uint64_t truncate_at;
} sli_disklog_opts;

/* sli_disklog_open opens the durable log kept in the directory dir (created, with its parents,
 * if missing), recovering what the files hold: afterwards sli_log_end is the end of the last
 * intact block and sli_disklog_recovered_upper the last upper marker before it.
 *
 * opts may be NULL (all defaults); it is copied.  Returns 0 and *out (free with sli_log_free),
 * or a negative code with a one-line reason in err[0, errlen) (err may be NULL):
 *   SL_EIO        the files are corrupt (a bad block followed by a good one, a bad block before
 *                 the last segment, a missing segment, a file of the wrong size): the message
 *                 names the file and the byte offset in it, and no file was modified;
 *   -EWOULDBLOCK  another open log (in this process or another) holds the directory;
 *   -errno        the operating system refused (ENOSPC extending a short segment, EACCES, ...);
 *   SL_EARG       bad segment size; SL_ENOMEM.
 * On success err holds the last warning, or "" when there was none.
 *
 * With opts->truncate, the recorded truncation is finished first (see there).  Otherwise
 * recovery may modify the last segment, and only it: a torn tail (a block the crash cut, and
 * whatever an uncommitted block left after the end) is zeroed, a last segment that holds no
 * intact block (created just before the crash) is removed, a short one is extended.
 * The calling thread becomes the log's writer. */
int sli_disklog_open(const char *dir, const sli_disklog_opts *opts, sli_log **out, char *err,
                     size_t errlen);

/* The upper of the last upper marker recovered at open, 0 when there was none (or for a
 * memory log). */
uint64_t sli_disklog_recovered_upper(const sli_log *log);

/* sli_log_mark_upper appends an upper marker: a block with nbytes 0 and min_time = max_time =
 * upper, which readers serving Data skip (a block with nbytes == 0 carries no events).  Writer
 * only.  Returns 0, or the error sli_log_error reports (-ENOSPC, -EIO, SL_ENOMEM).  Works on a
 * memory log too. */
int sli_log_mark_upper(sli_log *log, uint64_t upper);

/* sli_log_sync makes every block committed before the call durable against a machine crash:
 * msync(MS_SYNC) of the range written since the last sync (each segment it spans), and an
 * fsync of the directory when a segment was created since.  Blocks until the device reports
 * the data written (milliseconds on a disk).  Returns 0 or -errno (-EIO).
 *
 * Any thread, concurrently with the writer and readers (it only reads sli_log_end and the
 * mappings); concurrent calls serialise.  A failure is sticky: the kernel reports a writeback
 * error once and may drop the pages it could not write, so every later call returns the same
 * error instead of claiming durability that is not there.  A memory log returns 0. */
int sli_log_sync(sli_log *log);

/* sli_log_truncate_durable drops every block from pos (a block position) on, like
 * sli_log_truncate, deletes the segments after the one pos is in (sli_log_drop_after), and
 * makes that durable: the zeroed bytes of pos's segment are msync'ed and the directory fsync'ed.
 * Writer only, with no reader positioned after pos.  Returns 0 or -errno (sticky, like
 * sli_log_sync's).  A memory log: sli_log_truncate and sli_log_drop_after.
 *
 * A crash in the middle can leave a segment half zeroed with intact blocks after the hole,
 * which recovery refuses as corruption: a caller that must survive one records pos durably
 * first and passes it to the next open (sli_disklog_opts.truncate), which finishes the job. */
int sli_log_truncate_durable(sli_log *log, uint64_t pos);

/* The log directory's fd (for files kept beside the segments), or -1 for a memory log. */
int sli_disklog_dirfd(const sli_log *log);

#endif
