/*
 * fence.c - keeping a replaced primary from serving stale data as if it were current.
 *
 * A promoted standby knows the address of the primary it replaced (it followed it).  From its
 * promotion on, a fencer thread tries that address every FENCE_RETRY_MS; whenever the old
 * primary is (back) up, the fencer sends it Fence(term, own address).  The old primary, whose
 * term is lower, records the fence in DATA/fenced (so a restart keeps it), drops every
 * connection with Error(SL_EFENCED) naming the new primary, and refuses every later client the
 * same way.  A client that knows both addresses never needed this (it follows the higher term);
 * this covers the clients that know only the old address.  The window left: between the old
 * primary's return and the fencer's next try (FENCE_RETRY_MS), and for as long as the two
 * cannot reach each other.  To let a fenced process serve again, start it on a new data
 * directory (its history may hold batches the new primary never received).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/sock.h"
#include "storage/storage_int.h"

#define FENCE_RETRY_MS 500
#define FENCE_IO_MS 3000

int sli_storage_fence(sl_storage *st, uint64_t term, const char *by)
{
	int rc = sli_storage_save_fenced(st, term, by);
	if (rc != 0)
		return rc;
	if ((rc = sli_storage_save_term(st, term)) != 0 && st->cfg.data_dir != NULL)
		return rc;
	atomic_store(&st->term, term);
	st->fenced = 1;
	snprintf(st->fenced_by, sizeof(st->fenced_by), "%s", by);
	if (st->cfg.warn) {
		char msg[400];
		snprintf(msg, sizeof(msg), "fenced: superseded by %s at term %llu; serving no client any more",
		         by, (unsigned long long)term);
		st->cfg.warn(st->cfg.warn_arg, msg);
	}
	return 0;
}

/* Reads frames from fd until one arrives or the deadline passes.  1 with *f (pointing into
 * buf), 0 on EOF, negative on error or timeout. */
static int read_frame(int fd, uint8_t *buf, size_t cap, size_t *len, sli_frame *f, uint64_t deadline)
{
	for (;;) {
		ssize_t r = sli_frame_decode(buf, *len, SLI_FRAME_MAX_DEFAULT, f);
		if (r > 0) {
			/* Callers use one frame per read; keep nothing after it. */
			return 1;
		}
		if (r < 0)
			return (int)r;
		if (*len == cap)
			return SL_ETOOBIG;
		uint64_t now = sli_now_ms();
		if (now >= deadline)
			return SL_ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		ssize_t n = read(fd, buf + *len, cap - *len);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		*len += (size_t)n;
	}
}

static int send_all(int fd, const sli_buf *b)
{
	size_t off = 0;
	uint64_t deadline = sli_now_ms() + FENCE_IO_MS;
	while (off < b->len) {
		ssize_t n = send(fd, b->ptr + off, b->len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (sli_now_ms() > deadline)
			return SL_ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		poll(&p, 1, 100);
	}
	return 0;
}

/* One attempt: 1 when the old primary is fenced (or already was), 0 to try again later. */
static int fence_once(sl_storage *st, const char *target, const char *self)
{
	uint8_t buf[4096];
	size_t len = 0;
	sli_buf out;
	sli_frame f;
	int done = 0;
	int fd = sli_connect_tcp(target, FENCE_IO_MS);
	if (fd < 0)
		return 0;
	sli_buf_init(&out);
	sli_frame hello = {.type = SLI_HELLO};
	hello.u.hello.magic = SLI_MAGIC;
	hello.u.hello.version = SLI_PROTO_VERSION;
	hello.u.hello.name = (sl_bytes){(const uint8_t *)"sluiced fencer", 14};
	sli_frame fence = {.type = SLI_FENCE};
	fence.u.fence.term = atomic_load(&st->term);
	fence.u.fence.by = (sl_bytes){(const uint8_t *)self, strlen(self)};
	if (sli_frame_encode(&out, &hello) != 0 || sli_frame_encode(&out, &fence) != 0 ||
	    send_all(fd, &out) != 0)
		goto out;
	/* The answer: its Hello then Error(SL_EFENCED), or at once Error(SL_EFENCED) when it was
	 * fenced before. */
	uint64_t deadline = sli_now_ms() + FENCE_IO_MS;
	for (int frames = 0; frames < 4; frames++) {
		int rc = read_frame(fd, buf, sizeof(buf), &len, &f, deadline);
		if (rc != 1)
			break;
		if (f.type == SLI_ERROR && f.u.error.code == SL_EFENCED) {
			done = 1;
			break;
		}
		ssize_t used = sli_frame_decode(buf, len, SLI_FRAME_MAX_DEFAULT, &f);
		memmove(buf, buf + used, len - (size_t)used);
		len -= (size_t)used;
	}
out:
	sli_buf_fini(&out);
	close(fd);
	return done;
}

static void *fence_thread(void *arg)
{
	sl_storage *st = arg;
	char self[192];
	const char *colon = strrchr(st->listen, ':');
	snprintf(self, sizeof(self), "%.*s:%d", colon ? (int)(colon - st->listen) : 0, st->listen, st->port);
	while (!atomic_load(&st->fence_stop)) {
		if (fence_once(st, st->standby_of, self)) {
			/* Fenced; it stays so across its restarts.  Check now and then whether it was
			 * started on a fresh directory (then it is a different process: leave it). */
			if (st->cfg.warn) {
				char msg[400];
				snprintf(msg, sizeof(msg), "fenced the old primary %s", st->standby_of);
				st->cfg.warn(st->cfg.warn_arg, msg);
			}
			break;
		}
		for (int i = 0; i < FENCE_RETRY_MS / 50 && !atomic_load(&st->fence_stop); i++) {
			struct timespec ts = {0, 50 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int sli_fencer_start(sl_storage *st)
{
	if (st->fence_started || st->standby_of == NULL)
		return 0;
	atomic_store(&st->fence_stop, 0);
	int rc = pthread_create(&st->fence_tid, NULL, fence_thread, st);
	if (rc != 0)
		return -rc;
	st->fence_started = 1;
	return 0;
}

void sli_fencer_stop(sl_storage *st)
{
	if (!st->fence_started)
		return;
	atomic_store(&st->fence_stop, 1);
	pthread_join(st->fence_tid, NULL);
	st->fence_started = 0;
}
