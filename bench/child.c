/*
 * child.c - the storage child: a storage runtime in its own process, so its memory is its own;
 * started and stopped through two pipes, asked for its heap and RSS on demand.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static uint64_t vmrss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static void mem_self(struct mem *m)
{
	struct mallinfo2 mi = mallinfo2();
	m->heap = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
	m->rss = vmrss_bytes();
}

static int read_full(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void child_main(int cmd_fd, int rsp_fd, uint32_t workers, uint64_t per_worker,
                       int close_workers)
{
	struct store s;
	int32_t port;
	int rc = store_open(workers, per_worker, close_workers, &s);
	port = rc == 0 ? sl_storage_port(s.st) : rc;
	if (write_full(rsp_fd, &port, sizeof(port)) != 0 || rc != 0)
		goto out;
	for (;;) {
		char cmd;
		if (read_full(cmd_fd, &cmd, 1) != 0 || cmd == 'q')
			break;
		if (cmd == 'm') {
			struct mem m;
			mem_self(&m);
			if (write_full(rsp_fd, &m, sizeof(m)) != 0)
				break;
		}
	}
	store_close(&s);
out:
	close(cmd_fd);
	close(rsp_fd);
}

int child_start(uint32_t workers, uint64_t per_worker, int close_workers, struct child *ch)
{
	int a[2], b[2];
	int32_t port;
	memset(ch, 0, sizeof(*ch));
	if (pipe2(a, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(b, O_CLOEXEC) != 0) {
		int rc = -errno;
		close(a[0]);
		close(a[1]);
		return rc;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(a[0]), close(a[1]), close(b[0]), close(b[1]);
		return rc;
	}
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		child_main(a[0], b[1], workers, per_worker, close_workers);
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	ch->pid = pid;
	ch->cmd_fd = a[1];
	ch->rsp_fd = b[0];
	struct pollfd pfd = {.fd = ch->rsp_fd, .events = POLLIN};
	if (poll(&pfd, 1, 60000) != 1 || read_full(ch->rsp_fd, &port, sizeof(port)) != 0)
		port = SL_ETIMEDOUT;
	ch->port = port;
	return port > 0 ? 0 : port;
}

int child_mem(struct child *ch, struct mem *m)
{
	struct pollfd pfd = {.fd = ch->rsp_fd, .events = POLLIN};
	if (write_full(ch->cmd_fd, "m", 1) != 0 || poll(&pfd, 1, 10000) != 1 ||
	    read_full(ch->rsp_fd, m, sizeof(*m)) != 0)
		return SL_EIO;
	return 0;
}

/* Stops the child: asks it to close its storage, waits up to 10 s, then kills it. */
void child_stop(struct child *ch)
{
	if (ch->pid <= 0)
		return;
	(void)write_full(ch->cmd_fd, "q", 1);
	close(ch->cmd_fd);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(ch->pid, NULL, WNOHANG) == ch->pid)
			goto done;
		sleep_ms(10);
	}
	kill(ch->pid, SIGKILL);
	waitpid(ch->pid, NULL, 0);
done:
	close(ch->rsp_fd);
	ch->pid = 0;
}
