/*
 * sock.h - TCP socket helpers.  Errors are returned as -errno (or SL_EARG for an address that
 * does not parse); nothing here prints.
 */
#ifndef SLUICE_NET_SOCK_H
#define SLUICE_NET_SOCK_H

#include <netinet/in.h>

/* Parses "HOST:PORT" (IPv4 dotted quad or "localhost"; HOST may be empty for 0.0.0.0). */
int sli_parse_hostport(const char *s, struct sockaddr_in *out);

/* A non-blocking listening socket bound to hostport (SO_REUSEADDR).  Returns the fd; the bound
 * port is stored in *port_out when it is non-NULL. */
int sli_listen_tcp(const char *hostport, int *port_out);

/* Connects to hostport within timeout_ms and returns a non-blocking, TCP_NODELAY socket. */
int sli_connect_tcp(const char *hostport, int timeout_ms);

int sli_set_nonblock(int fd);
int sli_set_nodelay(int fd);

#endif
