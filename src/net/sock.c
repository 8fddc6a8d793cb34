/*
 * sock.c - TCP socket helpers: address parsing, listening, connecting with a timeout.
 */
#include "net/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/sluice.h"

int sli_parse_hostport(const char *s, struct sockaddr_in *out)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	char host[64];
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return SL_EARG;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0 || port > 65535)
		return SL_EARG;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (host[0] == '\0')
		out->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return SL_EARG;
	return 0;
}

int sli_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int sli_set_nodelay(int fd)
{
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

int sli_listen_tcp(const char *hostport, int *port_out)
{
	struct sockaddr_in sa;
	int rc, fd, one = 1;
	if ((rc = sli_parse_hostport(hostport, &sa)) != 0)
		return rc;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 512) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (port_out) {
		socklen_t sl = sizeof(sa);
		getsockname(fd, (struct sockaddr *)&sa, &sl);
		*port_out = ntohs(sa.sin_port);
	}
	return fd;
}

int sli_connect_tcp(const char *hostport, int timeout_ms)
{
	struct sockaddr_in sa;
	int rc, fd;
	if ((rc = sli_parse_hostport(hostport, &sa)) != 0)
		return rc;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto err_close;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int n;
		do
			n = poll(&p, 1, timeout_ms);
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			rc = SL_ETIMEDOUT;
			goto err_close;
		}
		int err = 0;
		socklen_t el = sizeof(err);
		if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) {
			rc = -errno;
			goto err_close;
		}
		if (err != 0) {
			rc = -err;
			goto err_close;
		}
	}
	sli_set_nodelay(fd);
	return fd;
err_close:
	close(fd);
	return rc;
}
