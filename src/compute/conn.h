/*
 * conn.h - the runtime thread's files and what they call in each other: connecting, the cluster
 * map, output, input, subscriptions on the wire, commands, requests, failover and the loop.
 *
 * Included by the src/compute files that run on the runtime thread (and by client.c, which sets
 * the runtime up and tears it down).  The files form layers, each calling only those below it,
 * so no two call each other:
 *
 *   client.c      open and close
 *   runtime.c     the loop: readiness, retry timers, ticks, wakes, idle turns
 *   input.c       reading and dispatching frames (the receive path)
 *   failover.c    losing a connection, reconnecting by term, resubscribing, the end
 *   commands.c    running the commands caller threads posted
 *   subscription.c  the handle table, the parked list, (re)subscribing, release
 *   ingest.c, sources.c   the Append and ListSources requests, both sides
 *   wire.c        output, and reporting a lost connection (through c->on_lost)
 *   cluster.c, connect.c  set-up before the runtime thread exists (and probing terms)
 *
 * State: see runtime.h; each group of sli_conn and sl_client fields names its owner.
 */
#ifndef SLUICE_COMPUTE_CONN_H
#define SLUICE_COMPUTE_CONN_H

#include "compute/runtime.h"

#define SLI_RBUF_INITIAL (256u << 10)
/* the first backoff of a reconnect, and the last chance an attempt gets past the window */
#define SLI_RETRY_MIN_MS 50u

/* ---- connect.c: blocking set-up, before the runtime thread exists ---- */

/* The cluster as one process describes it (copied out of the frame). */
typedef struct sli_cluster_view {
	uint64_t fingerprint;
	uint64_t term;
	uint32_t process, count;
	char (*addrs)[SLI_MAP_ENTRY_MAX];
} sli_cluster_view;

/* Fills in f with our Hello (the session, the token if any). */
void sli_encode_hello(sl_client *c, sli_frame *f);
/* Asks k for the cluster map.  1 when the server does not know ClusterMap (a server older than
 * clusters: it answered with an Error and closed the connection), 2 when it did not answer in
 * time, 0 with *v filled (v->addrs is the caller's to free, also on error). */
int sli_ask_cluster(sli_conn *k, sli_cluster_view *v);
/* Splits list at sep into addresses (each non-empty, shorter than SLI_ADDR_MAX).  0 with *out
 * (free it) and *n set, SL_EARG, SL_ENOMEM. */
int sli_split_addrs(const char *list, char sep, char (**out)[SLI_ADDR_MAX], uint32_t *n);
/* Zeroes k and gives it its read buffer.  0 or SL_ENOMEM. */
int sli_conn_init(sl_client *c, sli_conn *k, uint32_t index, const char *addr);
/* Sets the addresses k fails over among (see connect.c). */
int sli_conn_set_alts(sli_conn *k, const char *list, char sep);
/* Frees what sli_conn_init and connecting allocated (the loop registrations are the caller's). */
void sli_conn_fini(sli_conn *k);
/* Connects k to its address and exchanges Hello (message set on failure). */
int sli_conn_connect(sli_conn *k, uint64_t *session, uint64_t *epoch);
/* Of alts[0, n) (one process: a primary and its standbys), the reachable one with the highest
 * term, at least min_term (ties: the first listed).  Blocks for one connection attempt per
 * address.  Its index, or a negative error (the last address's; message set). */
int sli_pick_addr(sl_client *c, char (*alts)[SLI_ADDR_MAX], uint32_t n, uint64_t min_term,
                  uint64_t *term_out);

/* ---- cluster.c ---- */

/* Connects to cfg->server, learns the cluster and connects to every other process, checking
 * that all describe the same cluster.  Fills c->conns, c->nconns, c->home, c->fingerprint and
 * the map. */
int sli_cluster_open(sl_client *c);

/* The cluster process connection k talks to. */
static inline uint32_t sli_conn_process(const sli_conn *k)
{
	return k->c->nconns > 1 ? k->index : k->c->map_process;
}

/* ---- wire.c: output ---- */

/* Encodes f into k's output buffer (nothing when k is not connected). */
void sli_send_frame(sli_conn *k, const sli_frame *f);
/* Queues an Append part (cmd, taken) to be written after what is queued before it. */
void sli_queue_append(sli_conn *k, sli_cmd *cmd);
/* Drops everything not yet written (a lost connection; the parts' answers are ingest.c's). */
void sli_drop_output(sli_conn *k);
/* Writes k's output buffer and queued parts until both are empty (0) or the socket takes no
 * more (1); a failed
 * write returns its negative code (-errno; SL_EDISCONNECTED when nothing could be written). */
int sli_write_out(sli_conn *k);
/* sli_write_out on a connected k, asking the loop for writability while the socket is full;
 * a failed write loses the connection. */
void sli_flush(sli_conn *k);
/* k is lost (once: nothing when it is not connected or the client is already ending): hands
 * the formatted reason to c->on_lost. */
void sli_conn_lost(sli_conn *k, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- sources.c: ListSources, the runtime's side ---- */

/* Sends cmd's ListSources to every process (cmd stays the caller's). */
void sli_send_list(sl_client *c, const sli_cmd *cmd);
/* A Sources frame on k: the answer to the oldest ListSources sent on it. */
void sli_on_sources(sli_conn *k, const sli_sources *src);
/* k is lost: the ListSources sent on it will never be answered. */
void sli_fail_lists(sli_conn *k);
/* The worker count of source, from the last ListSources (asked now if unknown), on a caller's
 * thread.  0, or SL_ENOSOURCE / a ListSources error (message set). */
int sli_source_workers(sl_client *c, uint64_t source, int timeout_ms, uint32_t *out);

/* ---- ingest.c: Append, the runtime's side ---- */

/* Sends cmd's batch part on k (or answers it: not connected, out of memory); takes the
 * producer reference cmd holds.  1 when cmd itself was queued for writing (then it is wire.c's
 * to free), 0 when it is still the caller's. */
int sli_send_append(sli_conn *k, sli_cmd *cmd);
/* The answer of process k to batch (rc 0: committed at time; else rc and msg): it must be the
 * oldest part sent on k, else k is lost (a protocol violation). */
void sli_on_append_answer(sli_conn *k, uint64_t batch, int rc, uint64_t time, sl_bytes msg);
/* k is lost (or the client closes): every part sent on it and not answered may or may not
 * have been committed: each is answered SL_EDISCONNECTED. */
void sli_fail_append(sli_conn *k);

/* ---- subscription.c: the runtime's side of a subscription ---- */

/* A queue item carrying a message (SUBERR, DISCONNECTED); NULL when out of memory. */
sli_qitem *sli_msg_item(int kind, sli_csub *s, int code, const char *msg, size_t len);
/* Puts s on k's parked list in rstate (SLI_R_PARKED or SLI_R_DONE). */
void sli_park(sli_conn *k, sli_csub *s, int rstate);
/* The runtime's last act on s: frees its handle (or takes it off the parked list) and hands the
 * runtime's reference to the queue in a RELEASE item, behind every item pushed for s before. */
void sli_release(sl_client *c, sli_csub *s);
/* Sends s's Subscribe on k (see subscription.c).  0, or SL_ENOMEM (s is then still the
 * caller's to end). */
int sli_subscribe_wire(sli_conn *k, sli_csub *s);

/* The subscription holding handle h on k, or NULL.  Per Data frame: inline. */
static inline sli_csub *sli_handle_get(const sli_conn *k, uint32_t h)
{
	return h < k->nslots ? k->slots[h] : NULL;
}

static inline int sli_is_parked(const sli_csub *s)
{
	return s->rstate == SLI_R_PARKED || s->rstate == SLI_R_DONE;
}

/* ---- commands.c ---- */

/* Runs one command a caller thread posted, and frees it. */
void sli_run_cmd(sl_client *c, sli_cmd *cmd);

/* ---- failover.c ---- */

/* c->on_lost: k is lost: an outage (reconnects follow) or, without retries, the end. */
void sli_failover_lost(sli_conn *k, int code, const char *msg);
/* A Cluster frame on k: a stale process (a lower term) is lost, another cluster is the end. */
void sli_on_cluster(sli_conn *k, const sli_cluster *cl);
/* The non-blocking connect and Hello exchange of a new connection, on readiness.  When it
 * leaves k in SLI_PH_UP, the caller parses the frames that came behind the Hello. */
void sli_hello_io(sli_conn *k, uint32_t events);
/* An attempt to connect again failed with rc: wait and try again, or give up. */
void sli_attempt_failed(sli_conn *k, int rc);
/* The retry window ran out: the end of the client (last_rc: why the last attempt failed). */
void sli_give_up(sli_conn *k, int last_rc);

/* ---- input.c: the receive path ---- */

/* Parses every complete frame in k's read buffer and dispatches it; keeps the partial tail. */
void sli_parse_frames(sli_conn *k);
/* Reads fd (k's socket) until it is drained, parsing as it goes. */
void sli_client_read(sli_conn *k, int fd);

/* ---- runtime.c ---- */

/* Registers every connection with a new loop and starts the runtime thread.  0, or a negative
 * error (the loop is freed again). */
int sli_runtime_start(sl_client *c);
/* Stops the runtime thread and waits for it: its state is the caller's after. */
void sli_runtime_stop(sl_client *c);

#endif
