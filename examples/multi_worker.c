/*
 * multi_worker.c - N dataflow workers sharing one sluice client, each with its own queue.
 *
 *   example_multi_worker [HOST:PORT [SOURCE [SECONDS]]]     (127.0.0.1:6876 counter 10)
 *
 * Worker i subscribes to the source's workers w with w mod N == i, waits on its queue's fd with
 * poll(), counts updates, and prints its frontier (the minimum over its subscriptions) whenever
 * it advances.  It stops once all its subscriptions are closed, or when the time is up.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/compute.h"

#define N 3
#define MAX_SUBS 256

struct worker {
	int index;
	sl_client *client;
	const sl_source_info *source;
	double seconds;
	unsigned long long updates;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	sl_sub subs[MAX_SUBS];
	uint64_t frontier[MAX_SUBS];
	int nsubs = 0, open = 0;
	uint64_t shown = 0;
	sl_queue *q;

	if (sl_queue_open(wk->client, &q) != 0)
		return NULL;
	for (uint32_t w = (uint32_t)wk->index; w < wk->source->workers && nsubs < MAX_SUBS; w += N) {
		if (sl_subscribe(q, 1, wk->source->id, w, 0, &subs[nsubs]) == 0)
			frontier[nsubs++] = 0;
	}
	open = nsubs;

	double deadline = now_s() + wk->seconds;
	while (open > 0 && now_s() < deadline) {
		struct pollfd p = {.fd = sl_queue_fd(q), .events = POLLIN};
		poll(&p, 1, (int)((deadline - now_s()) * 1000) + 1);

		sl_event ev;
		while (open > 0 && sl_queue_next(q, &ev, 0) == 1) {
			if (ev.kind == SL_EV_DISCONNECTED || ev.kind == SL_EV_SUBSCRIBE_ERROR) {
				printf("worker %d: %s\n", wk->index, ev.message);
				if (ev.kind == SL_EV_DISCONNECTED)
					open = 0;
			}
			if (ev.kind == SL_EV_MESSAGES) {
				sl_iter it;
				sl_bytes row;
				int64_t diff;
				sl_iter_init(&it, &ev);
				while (sl_iter_update(&it, &row, &diff))
					wk->updates++;
			}
			/* a refused subscription counts as closed */
			uint64_t f = ev.kind == SL_EV_SUBSCRIBE_ERROR ? SL_TIME_CLOSED : ev.frontier;
			uint64_t least = SL_TIME_CLOSED;
			for (int k = 0; k < nsubs; k++) {
				if (subs[k].id == ev.sub.id) {
					if (f == SL_TIME_CLOSED && frontier[k] != SL_TIME_CLOSED)
						open--;
					frontier[k] = f;
				}
				if (frontier[k] < least)
					least = frontier[k];
			}
			if (least != shown) {
				shown = least;
				if (least == SL_TIME_CLOSED)
					printf("worker %d: frontier closed (%llu updates)\n", wk->index, wk->updates);
				else
					printf("worker %d: frontier %llu (%llu updates)\n", wk->index,
					       (unsigned long long)least, wk->updates);
			}
		}
	}
	sl_queue_close(q); /* unsubscribes whatever is still open */
	return NULL;
}

int main(int argc, char **argv)
{
	const char *server = argc > 1 ? argv[1] : "127.0.0.1:6876";
	const char *name = argc > 2 ? argv[2] : "counter";
	double seconds = argc > 3 ? atof(argv[3]) : 10;
	sl_client_config cfg;
	sl_client *client;
	sl_source_info *sources;
	size_t nsources;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	sl_client_config_init(&cfg);
	cfg.server = server;
	if ((rc = sl_client_open(&cfg, &client)) != 0) {
		fprintf(stderr, "connect %s: %s\n", server, sl_strerror(rc));
		return 1;
	}
	if ((rc = sl_client_list_sources(client, 5000, &sources, &nsources)) != 0) {
		fprintf(stderr, "list sources: %s\n", sl_strerror(rc));
		sl_client_close(client);
		return 1;
	}
	const sl_source_info *source = NULL;
	for (size_t i = 0; i < nsources; i++)
		if (strcmp(sources[i].name, name) == 0)
			source = &sources[i];
	if (source == NULL) {
		fprintf(stderr, "no source named %s\n", name);
		sl_source_info_free(sources, nsources);
		sl_client_close(client);
		return 1;
	}

	struct worker workers[N];
	pthread_t threads[N];
	for (int i = 0; i < N; i++) {
		workers[i] = (struct worker){.index = i, .client = client, .source = source,
		                             .seconds = seconds};
		pthread_create(&threads[i], NULL, worker_main, &workers[i]);
	}
	unsigned long long total = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(threads[i], NULL);
		total += workers[i].updates;
	}
	printf("%llu updates from %s\n", total, name);

	sl_source_info_free(sources, nsources);
	sl_client_close(client);
	return 0;
}
