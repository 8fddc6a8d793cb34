/*
 * raw.c - the raw peer: a plain TCP pump over loopback (one writer thread, one reader thread,
 * 256 KiB writes and reads) moving as many bytes as a sluice run moves row payload: the
 * machine's limit the sluice figures are set against.
 */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

/* ------------------------------------------------------------------------------------------ */
/* raw: the machine's limit */

struct pump {
	int fd;
	uint64_t bytes;
	int rc;
};

static void *pump_writer(void *arg)
{
	struct pump *p = arg;
	uint8_t *buf = malloc(RAW_CHUNK);
	uint64_t left = p->bytes;
	if (buf == NULL) {
		p->rc = -ENOMEM;
		shutdown(p->fd, SHUT_WR);
		return NULL;
	}
	memset(buf, 'x', RAW_CHUNK);
	while (left > 0) {
		size_t n = left < RAW_CHUNK ? (size_t)left : RAW_CHUNK;
		ssize_t w = write(p->fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			p->rc = -errno;
			break;
		}
		left -= (uint64_t)w;
	}
	shutdown(p->fd, SHUT_WR);
	free(buf);
	return NULL;
}

/* Moves `bytes` over a loopback TCP connection; *gbps = bytes / seconds / 1e9. */
static int run_raw(uint64_t bytes, double *gbps)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int lfd, wfd = -1, rfd = -1, rc = 0;
	uint8_t *buf = NULL;
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0 ||
	    (wfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(wfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    (rfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		rc = -errno;
		goto out;
	}
	if ((buf = malloc(RAW_CHUNK)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	struct pump p = {.fd = wfd, .bytes = bytes};
	pthread_t th;
	uint64_t t0 = now_ns(), got = 0;
	if ((rc = pthread_create(&th, NULL, pump_writer, &p)) != 0) {
		rc = -rc;
		goto out;
	}
	for (;;) {
		ssize_t r = read(rfd, buf, RAW_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (uint64_t)r;
	}
	uint64_t t1 = now_ns();
	pthread_join(th, NULL);
	if (p.rc != 0)
		rc = p.rc;
	else if (got != bytes)
		rc = -EIO;
	else
		*gbps = (double)bytes / (double)(t1 - t0);
out:
	free(buf);
	if (rfd >= 0)
		close(rfd);
	if (wfd >= 0)
		close(wfd);
	close(lfd);
	return rc;
}

/* The raw TCP pump, cf->runs times; its median GB/s, 0 when it failed. */
double bench_raw(const struct config *cf, double *v, int *failures)
{
	int runs = cf->runs;
	double raw = 0;
	int rc = 0;
	for (int r = 0; r < runs && rc == 0; r++)
		rc = run_raw(cf->tput_bytes, &v[r]);
	if (rc != 0) {
		(*failures)++;
		add_row("raw TCP pump", "GB/s", NULL, "error", "%s", sl_strerror(rc));
	} else {
		raw = median(v, runs);
		add_row("raw TCP pump", "GB/s", NULL, NULL, "%.2f", raw);
	}
	return raw;
}
