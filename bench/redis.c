/*
 * redis.c - the Redis peer: redis-server on a free loopback port, a hiredis publisher
 * pipelining PUBLISH of the same 100-byte payloads round-robin over the channels, and one
 * subscriber connection counting deliveries; set against sluice at the same subscription counts.
 * Without hiredis (SLUICE_BENCH_HIREDIS undefined) it reports "skipped (not installed)".
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#ifdef SLUICE_BENCH_HIREDIS
#include <hiredis/hiredis.h>
#endif

/* ------------------------------------------------------------------------------------------ */
/* Redis pub/sub */

#ifdef SLUICE_BENCH_HIREDIS
struct redis_pub {
	int port;
	uint32_t channels;
	uint64_t msgs;
	_Atomic uint64_t t_start;
	int rc;
};

static void chan_name(char *buf, size_t cap, uint32_t i)
{
	snprintf(buf, cap, "c%u", i);
}

static void *redis_pub_main(void *arg)
{
	struct redis_pub *p = arg;
	struct timeval tv = {.tv_sec = 10};
	redisContext *ctx = redisConnectWithTimeout("127.0.0.1", p->port, tv);
	uint8_t payload[ROW_BYTES];
	const size_t batch = 1000;
	fill_row(payload, 0);
	if (ctx == NULL || ctx->err) {
		p->rc = -ECONNREFUSED;
		goto out;
	}
	redisSetTimeout(ctx, tv);
	atomic_store(&p->t_start, now_ns());
	for (uint64_t i = 0; i < p->msgs && p->rc == 0;) {
		size_t n = p->msgs - i < batch ? (size_t)(p->msgs - i) : batch;
		for (size_t j = 0; j < n; j++) {
			char ch[16];
			chan_name(ch, sizeof(ch), (uint32_t)((i + j) % p->channels));
			redisAppendCommand(ctx, "PUBLISH %s %b", ch, payload, (size_t)ROW_BYTES);
		}
		for (size_t j = 0; j < n; j++) {
			void *reply;
			if (redisGetReply(ctx, &reply) != REDIS_OK) {
				p->rc = -EIO;
				break;
			}
			freeReplyObject(reply);
		}
		i += n;
	}
out:
	redisFree(ctx);
	return NULL;
}

/* One run: deliveries/s seen by one subscriber of `channels` channels. */
static int run_redis(int port, uint32_t channels, uint64_t msgs, uint64_t timeout_ns, double *mps)
{
	struct timeval tv = {.tv_sec = 10};
	redisContext *sub = redisConnectWithTimeout("127.0.0.1", port, tv);
	struct redis_pub pub = {.port = port, .channels = channels, .msgs = msgs};
	pthread_t th;
	uint64_t got = 0, t_last = 0, deadline = now_ns() + timeout_ns;
	int rc = 0;
	char **argv = NULL;
	size_t *argl = NULL;
	if (sub == NULL || sub->err) {
		redisFree(sub);
		return -ECONNREFUSED;
	}
	redisSetTimeout(sub, tv);
	/* SUBSCRIBE in commands of up to 1000 channels; one confirmation per channel. */
	const uint32_t per_cmd = 1000;
	argv = calloc(per_cmd + 1, sizeof(*argv));
	argl = calloc(per_cmd + 1, sizeof(*argl));
	if (argv == NULL || argl == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i <= per_cmd; i++)
		if ((argv[i] = malloc(16)) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
	for (uint32_t i = 0; i < channels; i += per_cmd) {
		uint32_t n = channels - i < per_cmd ? channels - i : per_cmd;
		strcpy(argv[0], "SUBSCRIBE");
		argl[0] = 9;
		for (uint32_t j = 0; j < n; j++) {
			chan_name(argv[j + 1], 16, i + j);
			argl[j + 1] = strlen(argv[j + 1]);
		}
		redisAppendCommandArgv(sub, (int)n + 1, (const char **)argv, argl);
	}
	for (uint32_t i = 0; i < channels; i++) {
		redisReply *r;
		if (redisGetReply(sub, (void **)&r) != REDIS_OK) {
			rc = -EIO;
			goto out;
		}
		freeReplyObject(r);
	}
	if ((rc = pthread_create(&th, NULL, redis_pub_main, &pub)) != 0) {
		rc = -rc;
		goto out;
	}
	while (got < msgs && now_ns() < deadline) {
		redisReply *r;
		if (redisGetReply(sub, (void **)&r) != REDIS_OK)
			break; /* timeout or error: counted as not delivered */
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		    r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len == ROW_BYTES)
			got++;
		freeReplyObject(r);
	}
	t_last = now_ns();
	pthread_join(th, NULL);
	if (pub.rc != 0)
		rc = pub.rc;
	else if (got != msgs) {
		fprintf(stderr, "redis: %" PRIu64 " of %" PRIu64 " messages delivered\n", got, msgs);
		rc = -EIO;
	} else
		*mps = (double)got / ((double)(t_last - atomic_load(&pub.t_start)) / 1e9);
out:
	if (argv)
		for (uint32_t i = 0; i <= per_cmd; i++)
			free(argv[i]);
	free(argv);
	free(argl);
	redisFree(sub);
	return rc;
}

/* A path to redis-server on PATH, or NULL. */
static int have_redis_server(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin";
	while (*path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);
		snprintf(buf, sizeof(buf), "%.*s/redis-server", (int)n, path);
		if (access(buf, X_OK) == 0)
			return 1;
		path += n;
		if (*path == ':')
			path++;
	}
	return 0;
}

/* Starts redis-server on a free loopback port and waits (at most 5 s) for it to answer PING. */
static pid_t redis_start(int *port_out)
{
	int port = free_port();
	char ps[16];
	if (port <= 0)
		return -1;
	snprintf(ps, sizeof(ps), "%d", port);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		execlp("redis-server", "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
		       "--appendonly", "no", "--protected-mode", "no", "--client-output-buffer-limit",
		       "pubsub 0 0 0", "--daemonize", "no", (char *)NULL);
		_exit(127);
	}
	uint64_t deadline = now_ns() + 5000000000ull;
	while (now_ns() < deadline) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		struct timeval tv = {.tv_sec = 1};
		redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
		if (c && !c->err) {
			redisReply *r = redisCommand(c, "PING");
			int ok = r && r->type == REDIS_REPLY_STATUS;
			freeReplyObject(r);
			redisFree(c);
			if (ok) {
				*port_out = port;
				return pid;
			}
		} else {
			redisFree(c);
		}
		sleep_ms(20);
	}
	stop_process(pid);
	return -1;
}
#endif

void bench_redis(const struct config *cf, const double *sluice_ups, double *v, int *failures)
{
	if (cf->skip_redis) {
		add_row("redis pub/sub", "", NULL, NULL, "skipped (--skip-redis)");
		return;
	}
#ifdef SLUICE_BENCH_HIREDIS
	int runs = cf->runs;
	char label[64], cnt[32];
	int port = 0;
	pid_t pid = have_redis_server() ? redis_start(&port) : -1;
	if (!have_redis_server()) {
		add_row("redis pub/sub", "", NULL, NULL, "skipped (not installed)");
	} else if (pid < 0) {
		(*failures)++;
		add_row("redis pub/sub", "", NULL, "error", "redis-server did not start");
	} else {
		for (int i = 0; i < cf->nsubs; i++) {
			int rc = 0;
			uint32_t n = cf->subs[i];
			for (int r = 0; r < runs && rc == 0; r++)
				rc = run_redis(port, n, cf->redis_msgs, cf->timeout_ns, &v[r]);
			fmt_count(cnt, sizeof(cnt), n);
			snprintf(label, sizeof(label), "redis, %s channel%s", cnt, n == 1 ? "" : "s");
			if (rc != 0) {
				(*failures)++;
				add_row(label, "messages/s", NULL, "error", "%s", sl_strerror(rc));
				continue;
			}
			double mps = median(v, runs);
			add_row(label, "messages/s", NULL, NULL, "%.0f", mps);
			if (sluice_ups[i] > 0)
				add_row(label, "sluice / redis", ">= 5x",
				        verdict(sluice_ups[i] / mps >= 5), "%.1fx", sluice_ups[i] / mps);
		}
		stop_process(pid);
	}
#else
	(void)sluice_ups, (void)v, (void)failures;
	add_row("redis pub/sub", "", NULL, NULL, "skipped (not installed)");
#endif
}
