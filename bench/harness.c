/*
 * harness.c - what every benchmark leans on: the configuration's defaults (full and --quick),
 * the median of runs, finding a free port and stopping a child process, and the machine
 * description printed at the top and written into the report.
 */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* ------------------------------------------------------------------------------------------ */
/* configuration */

void config_init(struct config *cf, int quick)
{
	memset(cf, 0, sizeof(*cf));
	cf->quick = quick;
	cf->runs = 3;
	if (quick) {
		cf->tput_bytes = 4u << 20;
		cf->subs[0] = 1, cf->subs[1] = 100, cf->subs[2] = 1000, cf->nsubs = 3;
		cf->redis_msgs = 20000;
		cf->fair_subs = 100;
		cf->fair_bytes = 4u << 20;
		cf->lat_subs = 100;
		cf->lat_rate = 100000;
		cf->lat_ms = 200;
		cf->mem_workers = 100, cf->mem_dataflows = 10;
		cf->timeout_ns = 30ull * 1000000000ull;
	} else {
		cf->tput_bytes = 1ull << 30;
		cf->subs[0] = 1, cf->subs[1] = 100, cf->subs[2] = 10000, cf->nsubs = 3;
		cf->redis_msgs = 2000000;
		cf->fair_subs = 100;
		cf->fair_bytes = 512ull << 20;
		cf->lat_subs = 1000;
		cf->lat_rate = 100000;
		cf->lat_ms = 3000;
		cf->mem_workers = 1000, cf->mem_dataflows = 100;
		cf->timeout_ns = 120ull * 1000000000ull;
	}
}

/* ------------------------------------------------------------------------------------------ */
/* small helpers */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The median of v[0, n) (sorts v); NAN-free: callers pass n >= 1. */
double median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}


/* ------------------------------------------------------------------------------------------ */
/* processes */

int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

void stop_process(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* ------------------------------------------------------------------------------------------ */

void machine(char *buf, size_t cap)
{
	char model[256] = "unknown", line[512];
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');
			if (strncmp(line, "model name", 10) == 0 && colon) {
				snprintf(model, sizeof(model), "%s", colon + 2);
				model[strcspn(model, "\n")] = '\0';
				break;
			}
		}
		fclose(f);
	}
	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	snprintf(buf, cap, "nproc %ld; CPU %s; kernel %s %s %s", sysconf(_SC_NPROCESSORS_ONLN), model,
	         u.sysname, u.release, u.machine);
}
