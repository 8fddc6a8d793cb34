/*
 * peers.c - at start, every process of a cluster greets every other one once, with a Hello
 * that carries its configuration fingerprint, so processes given different cluster lists or
 * source specs notice each other (both sides report it; the greeted side refuses the greeting
 * with SL_ECLUSTER).  Clients refuse a mixed cluster on their own (they compare the Cluster
 * answers); this makes the operator see it in the processes' logs too.  A peer that is not up
 * yet is tried again every second until it has been greeted, or the runtime closes.
 */
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/sock.h"
#include "storage/storage_int.h"

#define PEER_RETRY_MS 1000
#define PEER_IO_MS 3000

static void report(sl_storage *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(sl_storage *st, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	if (st->cfg.warn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st->cfg.warn(st->cfg.warn_arg, msg);
}

/* Greets peer i: 1 when it answered (agreeing or not), 0 when it could not be reached. */
static int greet(sl_storage *st, uint32_t i)
{
	uint8_t buf[2048];
	size_t len = 0;
	sli_buf out;
	sli_frame f;
	int answered = 0;
	int fd = sli_connect_tcp(st->cluster[i], PEER_IO_MS);
	if (fd < 0)
		return 0;
	sli_buf_init(&out);
	sli_frame hello = {.type = SLI_HELLO};
	hello.u.hello.magic = SLI_MAGIC;
	hello.u.hello.version = SLI_PROTO_VERSION;
	hello.u.hello.fingerprint = st->fingerprint;
	hello.u.hello.name = (sl_bytes){(const uint8_t *)"sluiced peer check", 18};
	if (sli_frame_encode(&out, &hello) != 0 || send(fd, out.ptr, out.len, MSG_NOSIGNAL) != (ssize_t)out.len)
		goto out;
	uint64_t deadline = sli_now_ms() + PEER_IO_MS;
	while (!answered && sli_now_ms() < deadline) {
		ssize_t r = sli_frame_decode(buf, len, SLI_FRAME_MAX_DEFAULT, &f);
		if (r > 0) {
			answered = 1;
			if (f.type == SLI_HELLO && f.u.hello.fingerprint != st->fingerprint)
				report(st, "process %u at %s has another cluster configuration (fingerprint %016llx, "
				       "ours %016llx): check --cluster and --source on every process", i,
				       st->cluster[i], (unsigned long long)f.u.hello.fingerprint,
				       (unsigned long long)st->fingerprint);
			else if (f.type == SLI_ERROR && f.u.error.code == SL_ECLUSTER)
				report(st, "process %u at %s refused us: %.*s", i, st->cluster[i],
				       (int)f.u.error.message.len, (const char *)f.u.error.message.ptr);
			break;
		}
		if (r < 0 || len == sizeof(buf))
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
out:
	sli_buf_fini(&out);
	close(fd);
	return answered;
}

static void *peers_thread(void *arg)
{
	sl_storage *st = arg;
	uint32_t left = st->cluster_size - 1;
	uint8_t done[256] = {0};
	done[st->process] = 1;
	while (left > 0 && !atomic_load(&st->peers_stop)) {
		for (uint32_t i = 0; i < st->cluster_size && i < sizeof(done); i++)
			if (!done[i] && greet(st, i)) {
				done[i] = 1;
				left--;
			}
		for (int k = 0; k < PEER_RETRY_MS / 50 && left > 0 && !atomic_load(&st->peers_stop); k++) {
			struct timespec ts = {0, 50 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int sli_peers_start(sl_storage *st)
{
	if (st->cluster == NULL || st->cluster_size < 2 || st->peers_started)
		return 0;
	int rc = pthread_create(&st->peers_tid, NULL, peers_thread, st);
	if (rc != 0)
		return -rc;
	st->peers_started = 1;
	return 0;
}

void sli_peers_stop(sl_storage *st)
{
	if (!st->peers_started)
		return;
	atomic_store(&st->peers_stop, 1);
	pthread_join(st->peers_tid, NULL);
	st->peers_started = 0;
}
