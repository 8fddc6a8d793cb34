/*
 * disklog_recover.c - opening a durable log: creating and locking its directory, and recovering
 * what its segment files hold (the format is described in disklog.c).
 *
 * Recovery.  Segments are taken in position order: the first one's base is
 * sli_log_start (compaction, later, removes segments from the front), and the next must follow
 * without a gap.  Blocks are walked from the first and each is checked (bounds, CRC).  Every
 * segment but the last must end cleanly (skip mark or short tail).  In the last one the walk
 * stops at the first header that is not an intact block; what follows it may only be what a
 * crash of the writer leaves: a torn block, or the events of a block reserved but never
 * committed, i.e. nonzero bytes within 24 + SLI_BLOCK_MAX bytes of the stop, none of them
 * starting an intact block.  Then the tail is zeroed (reported as "truncated torn tail at FILE
 * offset N" when a header was torn), a last segment left with no intact block is removed, and
 * the writer continues after the last intact block.  Anything else - a bad block with an intact
 * one after it, a bad block or a hole before the last segment, a missing segment, a file of the
 * wrong size, data far past the end - is corruption: SL_EIO naming the file and offset, and no
 * file is touched, because cutting the log there would silently drop blocks that were written.
 * A bad last block is indistinguishable from a torn one, so a bit flip in the last block is
 * truncated, not reported.
 *
 * A truncation the caller recorded (sli_disklog_opts.truncate) is finished before the walk:
 * segments after the recorded position are deleted and its own is zeroed from it on, so that
 * a crash in the middle of sli_log_truncate_durable, which may leave holes, recovers exactly.
 *
 * Everything here runs once, on the opening thread, before the log has readers; from then on the
 * log belongs to disklog.c and memlog.c.
 */
#include "log/disklog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/chunks.h"
#include "log/disklog_int.h"
#include "proto/proto.h"

/* The base named by a segment file name, or -1 for any other name. */
static int seg_parse(const char *name, uint64_t *base)
{
	uint64_t v = 0;
	for (int i = 0; i < SLI_SEG_HEX; i++) {
		char c = name[i];
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -1;
	}
	if (strcmp(name + SLI_SEG_HEX, SLI_SEG_SUFFIX) != 0)
		return -1;
	*base = v;
	return 0;
}

/* What the walk found at an offset of a segment. */
enum blk { BLK_VALID, BLK_ZERO, BLK_BAD };

struct rseg {
	uint64_t base;
	uint64_t fsize; /* bytes in the file (<= seg_size; the last one may be short) */
	uint8_t *map;
	char name[SLI_SEG_NAME_MAX];
};

struct rctx {
	struct sli_disklog *d;
	const char *dir;
	const sli_disklog_opts *o;
	char *err;
	size_t errlen;
	struct rseg *segs;
	size_t n;
};

static void say(struct rctx *r, const char *fmt, ...)
{
	if (r->err == NULL || r->errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
}

static void warning(struct rctx *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->o->warn != NULL)
		r->o->warn(r->o->warn_arg, msg);
	else if (r->err != NULL && r->errlen > 0)
		snprintf(r->err, r->errlen, "%s", msg);
}

/* Classifies the bytes at off of a segment whose first lim bytes exist (the rest of the file is
 * missing and reads as nothing).  *nbytes is the block's when BLK_VALID. */
static enum blk block_at(const uint8_t *map, uint64_t off, uint64_t lim, uint32_t *nbytes)
{
	const uint8_t *h = map + off;
	uint64_t have = lim > off ? lim - off : 0;
	uint64_t hdr = have < SLI_BLOCK_HDR ? have : SLI_BLOCK_HDR;
	int zero = 1;
	for (uint64_t i = 0; i < hdr && zero; i++)
		zero = h[i] == 0;
	if (zero)
		return BLK_ZERO;
	if (have < SLI_BLOCK_HDR)
		return BLK_BAD;
	uint32_t n = sli_get_u32(h);
	if (n > SLI_BLOCK_MAX || have - SLI_BLOCK_HDR < n)
		return BLK_BAD;
	if (sli_get_u32(h + 4) != sli_block_checksum(h))
		return BLK_BAD;
	*nbytes = n;
	return BLK_VALID;
}

/* The offset of the last nonzero byte of map[from, lim), or UINT64_MAX when all are zero. */
static uint64_t last_nonzero(const uint8_t *map, uint64_t from, uint64_t lim)
{
	uint64_t i = lim;
	while (i > from && (i & 7) != 0)
		if (map[--i] != 0)
			return i;
	while (i >= from + 8) {
		uint64_t w;
		memcpy(&w, map + i - 8, 8);
		if (w != 0)
			break;
		i -= 8;
	}
	while (i > from)
		if (map[--i] != 0)
			return i;
	return UINT64_MAX;
}

static int cmp_base(const void *a, const void *b)
{
	uint64_t x = ((const struct rseg *)a)->base, y = ((const struct rseg *)b)->base;
	return x < y ? -1 : x > y;
}

/* Lists, checks and maps the segment files (mapped read/write, but nothing is written). */
static int recover_list(struct rctx *r)
{
	struct sli_disklog *d = r->d;
	size_t cap = 0;
	int fd = dup(d->dirfd);
	if (fd < 0)
		return -errno;
	DIR *dp = fdopendir(fd);
	if (dp == NULL) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(dp)) != NULL) {
		uint64_t base;
		if (seg_parse(de->d_name, &base) != 0)
			continue;
		if (r->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct rseg *t = realloc(r->segs, ncap * sizeof(*t));
			if (t == NULL) {
				rc = SL_ENOMEM;
				break;
			}
			r->segs = t;
			cap = ncap;
		}
		struct rseg *s = &r->segs[r->n++];
		memset(s, 0, sizeof(*s));
		s->base = base;
		/* seg_parse checked the name's length */
		memcpy(s->name, de->d_name, SLI_SEG_HEX + sizeof(SLI_SEG_SUFFIX));
	}
	closedir(dp);
	if (rc != 0)
		return rc;
	if (r->n > 1)
		qsort(r->segs, r->n, sizeof(*r->segs), cmp_base);

	for (size_t i = 0; i < r->n; i++) {
		struct rseg *s = &r->segs[i];
		if ((s->base & (d->seg_size - 1)) != 0) {
			say(r, "%s/%s: not at a multiple of the segment size %" PRIu64, r->dir,
			    s->name, d->seg_size);
			return SL_EIO;
		}
		if (i > 0 && s->base != r->segs[i - 1].base + d->seg_size) {
			char missing[SLI_SEG_NAME_MAX];
			sli_disklog_seg_name(missing, r->segs[i - 1].base + d->seg_size);
			say(r, "%s/%s: missing (the log jumps from %s to %s)", r->dir, missing,
			    r->segs[i - 1].name, s->name);
			return SL_EIO;
		}
		struct stat st;
		if (fstatat(d->dirfd, s->name, &st, 0) != 0) {
			rc = -errno;
			say(r, "%s/%s: %s", r->dir, s->name, strerror(errno));
			return rc;
		}
		s->fsize = (uint64_t)st.st_size;
		if (!S_ISREG(st.st_mode) || s->fsize > d->seg_size ||
		    (i + 1 < r->n && s->fsize != d->seg_size)) {
			say(r, "%s/%s: ends at offset %" PRIu64 ", a segment is %" PRIu64, r->dir,
			    s->name, s->fsize, d->seg_size);
			return SL_EIO;
		}
		int sfd = openat(d->dirfd, s->name, O_RDWR | O_CLOEXEC);
		if (sfd < 0) {
			rc = -errno;
			say(r, "%s/%s: %s", r->dir, s->name, strerror(errno));
			return rc;
		}
		/* The whole segment is mapped even when the file is short: only its first fsize
		 * bytes are touched until recovery extends it. */
		s->map = mmap(NULL, d->seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
		rc = s->map == MAP_FAILED ? -errno : 0;
		close(sfd);
		if (rc != 0) {
			s->map = NULL;
			say(r, "%s/%s: mmap: %s", r->dir, s->name, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Walks every block, then repairs the tail of the last segment when that is all a crash can
 * have done.  *end is where the writer continues. */
static int recover_walk(struct rctx *r, uint64_t *end)
{
	struct sli_disklog *d = r->d;
	uint64_t seg_size = d->seg_size;
	uint64_t e = r->n ? r->segs[0].base : 0; /* just past the last intact block */
	uint64_t off = 0;
	enum blk stop = BLK_ZERO;
	for (size_t i = 0; i < r->n; i++) {
		struct rseg *s = &r->segs[i];
		int last = i + 1 == r->n;
		uint32_t n = 0;
		if (r->o->progress != NULL)
			r->o->progress(r->o->progress_arg, i, r->n);
		for (off = 0;; off += SLI_BLOCK_HDR + n) {
			if (seg_size - off < SLI_BLOCK_HDR ||
			    (off + 4 <= s->fsize && sli_get_u32(s->map + off) == SLI_SKIP_MARK)) {
				stop = BLK_VALID; /* the segment ends cleanly */
				break;
			}
			if ((stop = block_at(s->map, off, s->fsize, &n)) != BLK_VALID)
				break;
			if (n == 0)
				d->recovered_upper = sli_get_u64(s->map + off + 8);
			e = s->base + off + SLI_BLOCK_HDR + n;
		}
		if (last)
			break;
		if (stop != BLK_VALID) {
			const char *what = stop == BLK_BAD ? "bad block" : "end of data";
			say(r, "%s/%s: %s at offset %" PRIu64 ", but %s follows", r->dir, s->name,
			    what, off, r->segs[i + 1].name);
			return SL_EIO;
		}
	}
	*end = e;
	if (r->n == 0)
		return 0;

	/* The last segment: what lies at or after off must be a crash's leftovers. */
	struct rseg *s = &r->segs[r->n - 1];
	uint64_t lim = s->fsize < seg_size ? s->fsize : seg_size;
	uint64_t tail = last_nonzero(s->map, off, lim);
	if (tail != UINT64_MAX) {
		const char *what = stop == BLK_BAD ? "bad block" : "end of data";
		/* A writer writes at most one block past the end (and a skip mark at it). */
		uint64_t reach = off + SLI_BLOCK_HDR + SLI_BLOCK_MAX - 1;
		for (uint64_t o = off + 1; o <= tail && o <= reach; o++) {
			uint32_t n;
			if (block_at(s->map, o, lim, &n) == BLK_VALID) {
				say(r, "%s/%s: %s at offset %" PRIu64
				    " followed by a valid block at offset %" PRIu64,
				    r->dir, s->name, what, off, o);
				return SL_EIO;
			}
		}
		if (tail > reach) {
			say(r, "%s/%s: %s at offset %" PRIu64 ", but data at offset %" PRIu64,
			    r->dir, s->name, what, off, tail);
			return SL_EIO;
		}
	}

	/* From here on, files change. */
	int torn = stop == BLK_BAD;
	if (r->n > 1 && e < s->base) {
		/* Created just before the crash: nothing of it was committed.  The writer continues
		 * in the previous segment and creates this one again when it needs it.  That is only
		 * possible if the last intact block is in the previous segment: a writer never skips
		 * a whole segment (found by fuzz_log_recovery: segments holding nothing but a skip
		 * mark, then a torn one). */
		struct rseg *prev = &r->segs[r->n - 2];
		if (e < prev->base) {
			say(r, "%s/%s: holds no block, but %s follows", r->dir, prev->name, s->name);
			return SL_EIO;
		}
		munmap(s->map, seg_size);
		s->map = NULL;
		r->n--;
		/* The writer continues at e in the previous segment, so what lies after e there (the
		 * skip mark, and whatever recovery ignored after it) must be zero, or a second
		 * recovery would read it as a torn tail, or as corruption (found by
		 * fuzz_log_recovery). */
		struct rseg *p = &r->segs[r->n - 1];
		uint64_t poff = e - p->base, ptail = last_nonzero(p->map, poff, seg_size);
		if (ptail != UINT64_MAX) {
			uint64_t page = (uint64_t)sli_disklog_page_size(), from = poff & ~(page - 1);
			memset(p->map + poff, 0, ptail - poff + 1);
			if (msync(p->map + from, ptail + 1 - from, MS_SYNC) != 0) {
				int rc = -errno;
				say(r, "%s/%s: zeroing after the last block: %s", r->dir, p->name, strerror(errno));
				return rc;
			}
		}
		if (unlinkat(d->dirfd, s->name, 0) != 0 || fsync(d->dirfd) != 0) {
			int rc = -errno;
			say(r, "%s/%s: removing the empty last segment: %s", r->dir, s->name,
			    strerror(errno));
			return rc;
		}
		if (torn)
			warning(r, "truncated torn tail at %s/%s offset %" PRIu64
			        " (removed the segment: it held no intact block)",
			        r->dir, s->name, off);
		return 0;
	}
	if (s->fsize < seg_size) {
		/* Cut short (a crash while it was created, a truncated copy): allocate the rest. */
		int fd = openat(d->dirfd, s->name, O_RDWR | O_CLOEXEC), e2;
		if (fd < 0 || (e2 = sli_disklog_allocate(d, fd)) != 0 || fsync(fd) != 0) {
			e2 = fd < 0 ? errno : e2;
			if (fd >= 0)
				close(fd);
			say(r, "%s/%s: extending it to %" PRIu64 " bytes: %s", r->dir, s->name,
			    seg_size, strerror(e2));
			return -e2;
		}
		close(fd);
		s->fsize = seg_size;
	}
	if (tail != UINT64_MAX) {
		uint64_t page = (uint64_t)sli_disklog_page_size(), from = off & ~(page - 1);
		memset(s->map + off, 0, tail - off + 1);
		if (msync(s->map + from, tail + 1 - from, MS_SYNC) != 0) {
			int rc = -errno;
			say(r, "%s/%s: zeroing the tail: %s", r->dir, s->name, strerror(errno));
			return rc;
		}
		if (torn)
			warning(r, "truncated torn tail at %s/%s offset %" PRIu64
			        " (%" PRIu64 " bytes zeroed)",
			        r->dir, s->name, off, tail - off + 1);
	}
	return 0;
}

/* Finishes a recorded truncation at pos (opts->truncate): deletes the segments after pos's,
 * last first (a crash between two leaves a shorter log that is still whole), then zeroes pos's
 * segment from pos on, syncing both.  Idempotent, so a crash here is finished by the next open. */
static int recover_cut(struct rctx *r, uint64_t pos)
{
	struct sli_disklog *d = r->d;
	uint64_t base = pos & ~(d->seg_size - 1);
	int removed = 0;
	if (r->n > 0 && pos < r->segs[0].base) {
		say(r, "%s: a recorded truncation at %" PRIu64 " lies before the first segment %s",
		    r->dir, pos, r->segs[0].name);
		return SL_EIO;
	}
	while (r->n > 0 && r->segs[r->n - 1].base > base) {
		struct rseg *s = &r->segs[r->n - 1];
		munmap(s->map, d->seg_size);
		s->map = NULL;
		if (unlinkat(d->dirfd, s->name, 0) != 0) {
			int rc = -errno;
			say(r, "%s/%s: removing it (truncation): %s", r->dir, s->name, strerror(errno));
			return rc;
		}
		r->n--;
		removed = 1;
	}
	if (removed && fsync(d->dirfd) != 0) {
		int rc = -errno;
		say(r, "%s: fsync (truncation): %s", r->dir, strerror(errno));
		return rc;
	}
	if (r->n == 0 || r->segs[r->n - 1].base != base)
		return 0;
	struct rseg *s = &r->segs[r->n - 1];
	uint64_t off = pos - base, lim = s->fsize < d->seg_size ? s->fsize : d->seg_size;
	uint64_t tail = off < lim ? last_nonzero(s->map, off, lim) : UINT64_MAX;
	if (tail == UINT64_MAX)
		return 0;
	uint64_t page = (uint64_t)sli_disklog_page_size(), from = off & ~(page - 1);
	memset(s->map + off, 0, tail - off + 1);
	if (msync(s->map + from, tail + 1 - from, MS_SYNC) != 0) {
		int rc = -errno;
		say(r, "%s/%s: zeroing from offset %" PRIu64 " (truncation): %s", r->dir, s->name, off,
		    strerror(errno));
		return rc;
	}
	return 0;
}

static int recover(struct rctx *r, sli_log *log)
{
	struct sli_disklog *d = r->d;
	uint64_t end = 0;
	int rc;
	if ((rc = recover_list(r)) != 0)
		return rc;
	if (r->o->truncate && (rc = recover_cut(r, r->o->truncate_at)) != 0)
		return rc;
	if ((rc = recover_walk(r, &end)) != 0)
		return rc;
	d->start = r->n ? r->segs[0].base : 0;
	for (size_t i = 0; i < r->n; i++) {
		if ((rc = sli_disklog_segs_push(d, r->segs[i].base, r->segs[i].map)) != 0)
			return rc;
		r->segs[i].map = NULL; /* d owns it now */
		if ((rc = sli_log_adopt(log, d->segs[i].base, d->segs[i].map)) != 0)
			return rc;
	}
	sli_log_set_bounds(log, d->start, end);
	d->synced = end;
	return 0;
}

/* mkdir -p, fsync'ing the parent of each directory it creates. */
static int make_dirs(const char *dir)
{
	size_t len = strlen(dir);
	char *p = malloc(len + 1);
	if (p == NULL)
		return SL_ENOMEM;
	memcpy(p, dir, len + 1);
	int rc = 0;
	for (size_t i = 1; i <= len && rc == 0; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0755) == 0) {
			char *slash = strrchr(p, '/');
			int pfd;
			if (slash == p)
				pfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			else if (slash == NULL)
				pfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			else {
				*slash = '\0';
				pfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				*slash = '/';
			}
			if (pfd >= 0) {
				fsync(pfd);
				close(pfd);
			}
		} else if (errno != EEXIST) {
			rc = -errno;
		}
		p[i] = c;
	}
	free(p);
	return rc;
}

int sli_disklog_open(const char *dir, const sli_disklog_opts *opts, sli_log **out, char *err,
                     size_t errlen)
{
	static const sli_disklog_opts defaults;
	const sli_disklog_opts *o = opts ? opts : &defaults;
	struct rctx r = {.dir = dir, .o = o, .err = err, .errlen = errlen};
	sli_log *log = NULL;
	struct sli_disklog *d;
	int rc;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	uint64_t size = o->segment_size ? o->segment_size : SLI_DISKLOG_SEGMENT_DEFAULT;
	if (dir == NULL || out == NULL || (size & (size - 1)) != 0 ||
	    size < SLI_DISKLOG_SEGMENT_MIN || size > SLI_DISKLOG_SEGMENT_MAX) {
		say(&r, "bad arguments (segment size %" PRIu64 ")", size);
		return SL_EARG;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return SL_ENOMEM;
	r.d = d;
	d->dirfd = -1;
	d->seg_size = size;
	while (((uint64_t)1 << d->shift) < size)
		d->shift++;
	d->allocate = o->allocate;
	d->allocate_arg = o->allocate_arg;
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->sync_mu, NULL);
	if ((rc = make_dirs(dir)) != 0) {
		say(&r, "%s: creating it: %s", dir, sl_strerror(rc));
		goto err_release;
	}
	if ((d->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = -errno;
		say(&r, "%s: %s", dir, strerror(errno));
		goto err_release;
	}
	if (flock(d->dirfd, LOCK_EX | LOCK_NB) != 0) {
		rc = -errno;
		say(&r, "%s: %s", dir,
		    errno == EWOULDBLOCK ? "in use by another open log" : strerror(errno));
		goto err_release;
	}
	if ((rc = sli_log_new_chunked(&log, d->shift, &sli_disklog_chunk_ops, d)) != 0)
		goto err_release;
	if ((rc = recover(&r, log)) != 0)
		goto err_free_log;
	free(r.segs);
	*out = log;
	return 0;
err_free_log:
	if (err != NULL && errlen > 0 && err[0] == '\0')
		say(&r, "%s: %s", dir, sl_strerror(rc));
	for (size_t i = 0; i < r.n; i++)
		if (r.segs[i].map != NULL)
			munmap(r.segs[i].map, size);
	free(r.segs);
	sli_log_free(log); /* releases d */
	return rc;
err_release:
	sli_disklog_release(d);
	return rc;
}
