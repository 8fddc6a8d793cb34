/*
 * disklog.c - the durable log while it is open: its segment files (created, dropped, released
 * through the chunk ops memlog.c calls), sync, upper markers.  Opening and recovery are in
 * disklog_recover.c.
 *
 * On disk.  One directory per log.  The log's bytes are cut into segments of S bytes (a power
 * of two, 64 MiB by default); the segment holding positions [B, B + S) is the file named by B
 * in 16 lowercase hex digits, "0000000000000000.seg", "0000000004000000.seg", ...  A file is
 * exactly the log's bytes at those positions, with no file header, so the byte at position p is
 * at offset p - B of its segment, and a block is the same 24-byte header and events in memory,
 * on disk and (minus the header) in a Data frame:
 *
 *     u32 nbytes | u32 checksum | u64 min_time | u64 max_time | nbytes of encoded events
 *
 * little-endian; checksum is the CRC-32C of nbytes, min_time, max_time and the events (the
 * header without its checksum slot, then the events).  A block never straddles two segments:
 * the writer ends a segment with the u32 0xffffffff (a skip mark) where the next block would
 * not fit, or with nothing when fewer than 24 bytes are left.  A block with nbytes 0 is an upper
 * marker (min_time = max_time = the upper).  Everything after the last block of the last
 * segment is zero: segments are allocated with posix_fallocate (so a full disk is a clean
 * ENOSPC when a segment is created, never a SIGBUS when a page is first written) and a header
 * of 24 zero bytes is not a block (its CRC would not be zero).  Unknown files in the directory
 * are ignored; the directory is flock'ed while open, so two processes cannot write one log.
 *
 * Writing.  memlog.c's writer does the work: each segment is one of its chunks (created, dropped
 * and released through the chunk ops of chunks.h, registered when the log is made), mapped
 * MAP_SHARED read/write and never unmapped or moved while the log is open, so a reader's
 * position stays valid and readers need no lock.  sli_log_commit writes the checksum.
 *
 * Durability.  See disklog.h: a process crash loses nothing (the page cache has every committed
 * byte), a machine crash loses what was committed after the last sli_log_sync.  sync is
 * msync(MS_SYNC) of the range written since the previous sync (which on Linux is
 * fdatasync of that range: data, the metadata to read it, and a cache flush) plus an fsync of
 * the directory when segments were created.  Segment fds are closed right after mmap: msync
 * needs only the mapping.
 */
#include "log/disklog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log/chunks.h"
#include "log/disklog_int.h"
#include "proto/proto.h"

long sli_disklog_page_size(void)
{
	static long ps;
	if (ps == 0)
		ps = sysconf(_SC_PAGESIZE);
	return ps > 0 ? ps : 4096;
}

void sli_disklog_seg_name(char name[SLI_SEG_NAME_MAX], uint64_t base)
{
	snprintf(name, SLI_SEG_NAME_MAX, "%016" PRIx64 SLI_SEG_SUFFIX, base);
}

static int default_allocate(void *arg, int fd, off_t len)
{
	(void)arg;
	return posix_fallocate(fd, 0, len);
}

int sli_disklog_allocate(struct sli_disklog *d, int fd)
{
	if (d->allocate != NULL)
		return d->allocate(d->allocate_arg, fd, (off_t)d->seg_size);
	return default_allocate(NULL, fd, (off_t)d->seg_size);
}

int sli_disklog_segs_push(struct sli_disklog *d, uint64_t base, uint8_t *map)
{
	pthread_mutex_lock(&d->mu);
	if (d->nsegs == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct sli_disklog_seg *t = realloc(d->segs, cap * sizeof(*t));
		if (t == NULL) {
			pthread_mutex_unlock(&d->mu);
			return SL_ENOMEM;
		}
		d->segs = t;
		d->cap = cap;
	}
	d->segs[d->nsegs].base = base;
	d->segs[d->nsegs].map = map;
	d->nsegs++;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

/* Chunk op: creates, allocates and maps the segment at base; *out is its mapping.  Writer. */
static int disk_create_segment(void *owner, uint64_t base, uint8_t **out)
{
	struct sli_disklog *d = owner;
	char name[SLI_SEG_NAME_MAX];
	int rc, e;
	sli_disklog_seg_name(name, base);
	int fd = openat(d->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if ((e = sli_disklog_allocate(d, fd)) != 0) {
		rc = -e;
		goto err_unlink;
	}
	uint8_t *map = mmap(NULL, d->seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		goto err_unlink;
	}
	if ((rc = sli_disklog_segs_push(d, base, map)) != 0)
		goto err_unmap;
	close(fd);
	atomic_store(&d->dir_dirty, 1);
	*out = map;
	return 0;
err_unmap:
	munmap(map, d->seg_size);
err_unlink:
	/* Leave no half-made segment for recovery to puzzle over. */
	close(fd);
	unlinkat(d->dirfd, name, 0);
	return rc;
}

void sli_disklog_release(struct sli_disklog *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nsegs; i++)
		munmap(d->segs[i].map, d->seg_size);
	free(d->segs);
	if (d->dirfd >= 0)
		close(d->dirfd); /* releases the flock */
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->sync_mu);
	free(d);
}

/* Chunk op: unmaps and deletes the first segment (never the last).  Only the log's reader
 * thread, once no reader position lies in it.  0, SL_EARG (only one segment), -errno. */
static int disk_drop_first(void *owner)
{
	struct sli_disklog *d = owner;
	char name[SLI_SEG_NAME_MAX];
	/* Serialised with sli_log_sync, which may be mapping this segment's range right now. */
	pthread_mutex_lock(&d->sync_mu);
	pthread_mutex_lock(&d->mu);
	if (d->nsegs < 2) {
		pthread_mutex_unlock(&d->mu);
		pthread_mutex_unlock(&d->sync_mu);
		return SL_EARG; /* the writer's segment stays */
	}
	struct sli_disklog_seg first = d->segs[0];
	memmove(d->segs, d->segs + 1, (d->nsegs - 1) * sizeof(*d->segs));
	d->nsegs--;
	d->start = first.base + d->seg_size;
	if (d->synced < d->start)
		d->synced = d->start; /* nothing left to sync there */
	pthread_mutex_unlock(&d->mu);
	pthread_mutex_unlock(&d->sync_mu);
	munmap(first.map, d->seg_size);
	sli_disklog_seg_name(name, first.base);
	if (unlinkat(d->dirfd, name, 0) != 0)
		return -errno;
	atomic_store(&d->dir_dirty, 1);
	return 0;
}

/* Chunk op: unmaps and deletes the last segment (never the only one), which a truncation
 * emptied.  Writer, once no reader position lies in it.  SL_EARG (only one segment), else the
 * segment is forgotten and 0 or -errno says whether its file was removed. */
static int disk_drop_last(void *owner)
{
	struct sli_disklog *d = owner;
	char name[SLI_SEG_NAME_MAX];
	/* Serialised with sli_log_sync, which may be mapping this segment's range right now. */
	pthread_mutex_lock(&d->sync_mu);
	pthread_mutex_lock(&d->mu);
	if (d->nsegs < 2) {
		pthread_mutex_unlock(&d->mu);
		pthread_mutex_unlock(&d->sync_mu);
		return SL_EARG;
	}
	struct sli_disklog_seg last = d->segs[--d->nsegs];
	if (d->synced > last.base)
		d->synced = last.base; /* nothing left to sync there */
	pthread_mutex_unlock(&d->mu);
	pthread_mutex_unlock(&d->sync_mu);
	munmap(last.map, d->seg_size);
	sli_disklog_seg_name(name, last.base);
	atomic_store(&d->dir_dirty, 1);
	return unlinkat(d->dirfd, name, 0) != 0 ? -errno : 0;
}

/* Chunk op: unmaps every segment and frees the disk log (called by sli_log_free). */
static void disk_release(void *owner)
{
	sli_disklog_release(owner);
}

const sli_chunk_ops sli_disklog_chunk_ops = {
	.create = disk_create_segment,
	.drop_first = disk_drop_first,
	.drop_last = disk_drop_last,
	.release = disk_release,
};

/* The disk log behind log, or NULL for a memory log. */
static struct sli_disklog *disk_of(const sli_log *log)
{
	return sli_log_chunk_owner(log, &sli_disklog_chunk_ops);
}

int sli_disklog_dirfd(const sli_log *log)
{
	struct sli_disklog *d = disk_of(log);
	return d ? d->dirfd : -1;
}

uint64_t sli_disklog_recovered_upper(const sli_log *log)
{
	struct sli_disklog *d = disk_of(log);
	return d ? d->recovered_upper : 0;
}

int sli_log_mark_upper(sli_log *log, uint64_t upper)
{
	if (sli_log_reserve(log, 0) == NULL)
		return sli_log_error(log);
	sli_log_commit(log, 0, upper, upper);
	return 0;
}

static uint8_t *seg_map(struct sli_disklog *d, uint64_t base)
{
	uint8_t *map = NULL;
	pthread_mutex_lock(&d->mu);
	uint64_t i = (base - d->start) >> d->shift;
	if (base >= d->start && i < d->nsegs)
		map = d->segs[i].map;
	pthread_mutex_unlock(&d->mu);
	return map;
}

int sli_log_sync(sli_log *log)
{
	struct sli_disklog *d = disk_of(log);
	if (d == NULL)
		return 0;
	pthread_mutex_lock(&d->sync_mu);
	int rc = d->sync_err;
	if (rc != 0)
		goto out;
	uint64_t end = sli_log_end(log), pos = d->synced;
	uint64_t page = (uint64_t)sli_disklog_page_size();
	while (pos < end) {
		/* Up to the end of each segment but the last: that covers its skip mark. */
		uint64_t base = pos & ~(d->seg_size - 1);
		uint64_t stop = end - base < d->seg_size ? end : base + d->seg_size;
		uint64_t from = (pos - base) & ~(page - 1);
		uint8_t *map = seg_map(d, base);
		if (map == NULL) {
			rc = SL_EIO;
			goto fail;
		}
		if (msync(map + from, stop - base - from, MS_SYNC) != 0) {
			rc = -errno;
			goto fail;
		}
		pos = stop;
	}
	/* After the data: a crash between the two leaves files the directory may not list yet,
	 * which recovery never needs (their bytes were after the last sync anyway). */
	if (atomic_exchange(&d->dir_dirty, 0) && fsync(d->dirfd) != 0) {
		rc = -errno;
		goto fail;
	}
	d->synced = end;
	goto out;
fail:
	d->sync_err = rc;
out:
	pthread_mutex_unlock(&d->sync_mu);
	return rc;
}

int sli_log_truncate_durable(sli_log *log, uint64_t pos)
{
	struct sli_disklog *d = disk_of(log);
	uint64_t end = sli_log_end(log);
	if (pos >= end)
		return 0;
	sli_log_truncate(log, pos); /* zeroes [pos, end) in the mappings: the page cache has it */
	pos = sli_log_end(log);     /* (never below the start) */
	/* First the segments after pos's: a recovery must not meet a run of empty segments (it
	 * takes an empty segment before the last for corruption). */
	int rc = sli_log_drop_after(log);
	if (d == NULL || rc != 0)
		return rc;
	pthread_mutex_lock(&d->sync_mu);
	if ((rc = d->sync_err) != 0)
		goto out;
	/* Then the zeroed bytes of pos's own segment (sli_log_sync covers only what lies below
	 * the end), and the directory for the deleted files. */
	uint64_t base = pos & ~(d->seg_size - 1), page = (uint64_t)sli_disklog_page_size();
	uint64_t stop = end - base < d->seg_size ? end - base : d->seg_size;
	uint64_t from = (pos - base) & ~(page - 1);
	uint8_t *map = seg_map(d, base);
	if (map != NULL && stop > from && msync(map + from, stop - from, MS_SYNC) != 0)
		rc = -errno;
	else if (atomic_exchange(&d->dir_dirty, 0) && fsync(d->dirfd) != 0)
		rc = -errno;
	if (rc != 0)
		d->sync_err = rc; /* sticky, as for sli_log_sync */
	else if (d->synced > pos)
		d->synced = pos;
out:
	pthread_mutex_unlock(&d->sync_mu);
	return rc;
}
