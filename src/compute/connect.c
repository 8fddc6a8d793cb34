/*
 * connect.c - setting up a connection to one storage process: connect, TLS, the Hello exchange
 * and asking its cluster map, all blocking and before the runtime thread exists; and probing
 * the addresses of one process (its primary and standbys) for the one with the highest term.
 *
 * The runtime thread calls sli_pick_addr too, before an attempt to connect again (it blocks it
 * for one probe per address), and sli_encode_hello for the Hello of a new connection.
 */
#include "compute/conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/sock.h"
#include "net/tls.h"

static int wait_fd(int fd, short events, uint64_t deadline)
{
	uint64_t now = sli_now_ms();
	if (now >= deadline)
		return SL_ETIMEDOUT;
	struct pollfd p = {.fd = fd, .events = events};
	int n = poll(&p, 1, (int)(deadline - now));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n == 0 ? SL_ETIMEDOUT : 0;
}

/* Sends f on k and returns in *ans the next frame that is not a Ping (pointing into k->rbuf,
 * valid until *consumed bytes are dropped from it), before the runtime thread exists. */
static int exchange(sli_conn *k, const sli_frame *f, uint64_t deadline, sli_frame *ans,
                    size_t *consumed)
{
	sl_client *c = k->c;
	int rc;
	if ((rc = sli_frame_encode(&k->out, f)) != 0)
		return rc;
	while ((rc = sli_write_out(k)) == 1)
		if ((rc = wait_fd(k->fd, POLLOUT, deadline)) != 0)
			return rc;
	if (rc < 0)
		return rc;
	for (;;) {
		ssize_t r = sli_frame_decode(k->rbuf, k->rlen, c->cfg.max_frame, ans);
		if (r < 0)
			return (int)r;
		if (r > 0 && ans->type == SLI_PING) {
			memmove(k->rbuf, k->rbuf + r, k->rlen - (size_t)r);
			k->rlen -= (size_t)r;
			continue;
		}
		if (r > 0) {
			*consumed = (size_t)r;
			return 0;
		}
		if (k->rlen == k->rcap)
			return SL_EPROTO; /* an answer larger than the read buffer */
		ssize_t n = sli_io_read(k->fd, k->ssl, k->rbuf + k->rlen, k->rcap - k->rlen);
		if (n > 0)
			k->rlen += (size_t)n;
		else if (n == 0)
			return SL_EDISCONNECTED;
		else if (errno == EAGAIN || errno == EINTR) {
			if ((rc = wait_fd(k->fd, POLLIN, deadline)) != 0)
				return rc;
		} else
			return -errno;
	}
}

static void drop_answer(sli_conn *k, size_t consumed)
{
	memmove(k->rbuf, k->rbuf + consumed, k->rlen - consumed);
	k->rlen -= consumed;
}

void sli_encode_hello(sl_client *c, sli_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->type = SLI_HELLO;
	f->u.hello = (sli_hello){.magic = SLI_MAGIC, .version = SLI_PROTO_VERSION,
	                         .session = c->session, .epoch = 0,
	                         .name = {(const uint8_t *)"libsluice", 9}};
	if (c->token != NULL) {
		f->u.hello.flags |= SLI_HELLO_TOKEN;
		f->u.hello.token = (sl_bytes){(const uint8_t *)c->token, strlen(c->token)};
	}
}

/* Sends our Hello and waits for the server's, before the runtime thread exists. */
static int handshake(sli_conn *k, uint64_t *session, uint64_t *epoch)
{
	sl_client *c = k->c;
	uint64_t deadline = sli_now_ms() + (uint64_t)c->cfg.connect_timeout_ms;
	sli_frame f, ans = {0};
	size_t used = 0;
	int rc;
	sli_encode_hello(c, &f);
	if ((rc = exchange(k, &f, deadline, &ans, &used)) != 0)
		return rc;
	if (ans.type == SLI_ERROR) {
		sli_set_last_error("%.*s", (int)ans.u.error.message.len,
		                   (const char *)ans.u.error.message.ptr);
		return ans.u.error.code ? ans.u.error.code : SL_EPROTO;
	}
	if (ans.type != SLI_HELLO || ans.u.hello.magic != SLI_MAGIC)
		return SL_EPROTO;
	if (ans.u.hello.version != SLI_PROTO_VERSION)
		return SL_EVERSION;
	*session = ans.u.hello.session;
	*epoch = ans.u.hello.epoch;
	drop_answer(k, used);
	return 0;
}

/* Asks k for the cluster map (see conn.h). */
int sli_ask_cluster(sli_conn *k, sli_cluster_view *v)
{
	uint64_t wait = (uint64_t)k->c->cfg.connect_timeout_ms;
	/* no longer than the runtime would wait before declaring the connection dead */
	if (wait > k->c->cfg.idle_timeout_ms)
		wait = k->c->cfg.idle_timeout_ms;
	uint64_t deadline = sli_now_ms() + wait;
	sli_frame f = {.type = SLI_CLUSTER_MAP}, ans = {0};
	size_t used = 0;
	int rc;
	if ((rc = exchange(k, &f, deadline, &ans, &used)) != 0)
		return rc == SL_ETIMEDOUT ? 2 : rc;
	if (ans.type == SLI_ERROR && ans.u.error.code == SL_EPROTO)
		return 1;
	if (ans.type != SLI_CLUSTER || ans.u.cluster.count == 0)
		return SL_EPROTO;
	v->fingerprint = ans.u.cluster.fingerprint;
	v->term = ans.u.cluster.term;
	v->process = ans.u.cluster.process;
	v->count = ans.u.cluster.count;
	if ((v->addrs = calloc(v->count, sizeof(*v->addrs))) == NULL)
		return SL_ENOMEM;
	sl_bytes rest = ans.u.cluster.addrs, one;
	for (uint32_t i = 0; i < v->count; i++) {
		if (sli_strs_next(&rest, &one) != 1 || one.len == 0 || one.len >= sizeof(v->addrs[i]))
			return SL_EPROTO; /* the caller frees v->addrs */
		memcpy(v->addrs[i], one.ptr, one.len);
	}
	drop_answer(k, used);
	return 0;
}

/* Splits list at sep into addresses (each non-empty, shorter than SLI_ADDR_MAX).  0 with *out
 * (free it) and *n set, SL_EARG, SL_ENOMEM. */
int sli_split_addrs(const char *list, char sep, char (**out)[SLI_ADDR_MAX], uint32_t *n)
{
	uint32_t cnt = 1;
	for (const char *p = list; *p; p++)
		cnt += *p == sep;
	char (*a)[SLI_ADDR_MAX] = calloc(cnt, sizeof(*a));
	if (a == NULL)
		return SL_ENOMEM;
	const char *p = list;
	for (uint32_t i = 0; i < cnt; i++) {
		const char *e = strchr(p, sep);
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0 || len >= SLI_ADDR_MAX) {
			free(a);
			return SL_EARG;
		}
		snprintf(a[i], sizeof(a[i]), "%.*s", (int)len, p);
		p = e ? e + 1 : p + len;
	}
	*out = a;
	*n = cnt;
	return 0;
}

int sli_conn_init(sl_client *c, sli_conn *k, uint32_t index, const char *addr)
{
	memset(k, 0, sizeof(*k));
	k->c = c;
	k->index = index;
	k->fd = -1;
	k->timerfd = -1;
	snprintf(k->addr, sizeof(k->addr), "%s", addr);
	sli_buf_init(&k->out);
	k->rcap = SLI_RBUF_INITIAL;
	if ((k->rbuf = malloc(k->rcap)) == NULL)
		return SL_ENOMEM;
	return 0;
}

/* Sets the addresses k fails over among: list split at sep (a map entry: '/').  An address k
 * already has that is not among them (the one the caller was given, spelt another way) goes
 * first. */
int sli_conn_set_alts(sli_conn *k, const char *list, char sep)
{
	char (*a)[SLI_ADDR_MAX];
	uint32_t n, i;
	int rc;
	if ((rc = sli_split_addrs(list, sep, &a, &n)) != 0) {
		sli_set_last_error("bad address list '%s' for storage process %u", list, k->index);
		return rc;
	}
	for (i = 0; i < n && strcmp(a[i], k->addr) != 0; i++)
		;
	if (k->addr[0] != '\0' && i == n) {
		char (*b)[SLI_ADDR_MAX] = realloc(a, (n + 1) * sizeof(*a));
		if (b == NULL) {
			free(a);
			return SL_ENOMEM;
		}
		a = b;
		memmove(a + 1, a, n * sizeof(*a));
		snprintf(a[0], sizeof(a[0]), "%s", k->addr);
		n++;
	}
	if (k->addr[0] == '\0')
		snprintf(k->addr, sizeof(k->addr), "%s", a[0]);
	free(k->alts);
	k->alts = a;
	k->nalts = n;
	return 0;
}

/* Frees what conn_init and connecting allocated (the loop registrations are the caller's). */
void sli_conn_fini(sli_conn *k)
{
	for (sli_cmd *cmd = k->list_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		sli_cmd_free(cmd);
	}
	k->list_head = k->list_tail = NULL;
	free(k->pend); /* empty: sli_fail_append answered every part */
	k->pend = NULL;
	sli_tls_free(k->ssl);
	k->ssl = NULL;
	if (k->fd >= 0)
		close(k->fd);
	if (k->timerfd >= 0)
		close(k->timerfd);
	k->fd = k->timerfd = -1;
	sli_buf_fini(&k->out);
	free(k->rbuf);
	free(k->slots);
	free(k->freeh);
	free(k->alts);
	k->rbuf = NULL;
	k->slots = NULL;
	k->freeh = NULL;
	k->alts = NULL;
	k->nalts = 0;
}

/* Connects k to its address and exchanges Hello. */
int sli_conn_connect(sli_conn *k, uint64_t *session, uint64_t *epoch)
{
	int rc;
	if ((k->fd = sli_connect_tcp(k->addr, k->c->cfg.connect_timeout_ms)) < 0) {
		rc = k->fd;
		k->fd = -1;
		sli_set_last_error("cannot connect to storage at %s: %s", k->addr, sl_strerror(rc));
		return rc;
	}
	k->rlen = 0;
	k->out.len = 0;
	if (k->c->tls != NULL) {
		char why[256];
		uint64_t deadline = sli_now_ms() + (uint64_t)k->c->cfg.connect_timeout_ms;
		if ((rc = sli_tls_connect(k->c->tls, k->fd, k->addr, deadline, &k->ssl, why,
		                          sizeof(why))) != 0) {
			sli_set_last_error("TLS with storage at %s failed: %s", k->addr, why);
			close(k->fd);
			k->fd = -1;
			return rc;
		}
	}
	if ((rc = handshake(k, session, epoch)) != 0) {
		if (rc == -EPROTO && k->ssl != NULL) {
			/* e.g. TLS 1.3 mutual TLS: the refusal of our certificate comes after the
			 * handshake, as an alert in place of the answer */
			sli_set_last_error("TLS with storage at %s failed: %s", k->addr,
			                   sli_tls_last_error());
			rc = SL_ETLS;
		} else if ((rc == -ECONNRESET || rc == SL_EDISCONNECTED) && k->ssl != NULL) {
			sli_set_last_error("TLS with storage at %s failed: the server closed the "
			                   "connection after the handshake (does it want a client "
			                   "certificate: --tls-cert/--tls-key?)", k->addr);
			rc = SL_ETLS;
		}
		if (sl_client_last_error()[0] == '\0')
			sli_set_last_error("no Hello from storage at %s: %s", k->addr, sl_strerror(rc));
		sli_tls_free(k->ssl);
		k->ssl = NULL;
		close(k->fd);
		k->fd = -1;
	}
	return rc;
}

/* Connects to addr, asks its cluster map and hangs up: *term is its fencing term (0 for a
 * server without cluster maps). */
static int probe(sl_client *c, const char *addr, uint64_t *term)
{
	sli_conn k;
	sli_cluster_view v = {0};
	uint64_t s, e;
	int rc;
	if ((rc = sli_conn_init(c, &k, 0, addr)) != 0)
		return rc;
	if ((rc = sli_conn_connect(&k, &s, &e)) == 0) {
		rc = sli_ask_cluster(&k, &v);
		if (rc == 1) {
			*term = 0;
			rc = 0;
		} else if (rc == 2) {
			rc = SL_ETIMEDOUT;
		} else if (rc == 0) {
			*term = v.term;
		}
	}
	free(v.addrs);
	sli_conn_fini(&k);
	return rc;
}

/* Of alts[0, n) (one process: a primary and its standbys), the reachable one with the highest
 * term, at least min_term (ties: the first listed).  Blocks for one connection attempt per
 * address.  Its index, or a negative error (the last address's). */
int sli_pick_addr(sl_client *c, char (*alts)[SLI_ADDR_MAX], uint32_t n, uint64_t min_term,
                  uint64_t *term_out)
{
	int best = -1, rc = SL_EDISCONNECTED;
	uint64_t best_term = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t = 0;
		int r = probe(c, alts[i], &t);
		if (r != 0) {
			rc = r;
			continue;
		}
		if (t < min_term) {
			rc = SL_ECLUSTER; /* stale: an old primary that came back */
			continue;
		}
		if (best < 0 || t > best_term) {
			best = (int)i;
			best_term = t;
		}
	}
	if (best < 0) {
		sli_set_last_error("no storage reachable at %s%s with term >= %llu: %s", alts[0],
		                   n > 1 ? " or its standbys" : "", (unsigned long long)min_term,
		                   sl_strerror(rc));
		return rc;
	}
	*term_out = best_term;
	return best;
}
