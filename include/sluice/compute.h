/*
 * compute.h - the compute side of sluice: a client runtime for dataflow workers.
 *
 * sl_client owns one runtime thread that owns the connection to storage: it reads frames,
 * routes each subscription's events to the queue of the dataflow worker that owns it, grants
 * credit back to storage as the worker consumes, and answers heartbeats.  Each dataflow worker
 * thread opens its own sl_queue, subscribes through it, and receives events from it: by blocking
 * in sl_queue_next with a timeout, or by polling sl_queue_fd.  User code never runs on the
 * runtime thread, and the runtime thread never waits for a worker: a worker that stops consuming
 * stops granting credit, so storage stops sending to its subscriptions only.
 *
 * Conventions (errors, ownership, threads): see sluice.h.  There are no callbacks: events reach
 * the worker only through sl_queue_next.  Here in particular:
 *
 * Threads.  The sl_client_* functions except sl_client_close are thread-safe: any thread,
 * concurrently (sl_client_list_sources and sl_client_append each serve one caller at a time
 * and make the others wait).  sl_queue_open is thread-safe.  A queue, and the subscriptions
 * made through it, belong to one thread at a time: sl_queue_next, sl_queue_close, sl_subscribe,
 * sl_unsubscribe and sl_sub_frontier on one queue must not run concurrently (the queue may
 * pass from one thread to another between calls); different queues are independent.
 * sl_queue_fd may be called from any thread.  Order of the end: close every queue, then the
 * client, and no thread may be inside, or later enter, a call on them.
 *
 * Blocking: sl_client_open, sl_client_list_sources and sl_client_append wait for the network
 * (bounded by their timeouts); sl_queue_next waits up to its timeout; sl_client_close joins the
 * runtime thread.  The others return at once (they may take a mutex the runtime holds briefly).
 *
 * Reconnects: when the connection to storage is lost (EOF, a socket error, no answer to
 * heartbeats, a fatal Error frame), the runtime connects again by itself, with exponential
 * backoff (50 ms doubling to 2 s, +-25% jitter), for up to cfg.retry_for_ms; a refused connection
 * meanwhile is expected (storage restarting).  Subscriptions stay live through the outage, and
 * sl_subscribe / sl_unsubscribe keep working (a new Subscribe is sent once a connection is back).
 * On the new connection every queue with a subscription gets SL_EV_RECONNECTED, then every live
 * subscription is subscribed again from its resume point, the frontier the runtime had received
 * for it.  Storage sends every update at a time >= that point again, in the same order (its log
 * order is deterministic, also across a restart on the same data directory); the runtime drops
 * exactly the updates the worker was already given, and the Progress that re-establishes a
 * frontier the worker already has.  So the worker sees one stream with no gap, no duplicate, and
 * a frontier that never goes backwards, as if nothing had happened.  Only when the window runs
 * out do the queues get SL_EV_DISCONNECTED and every subscription end.  A ListSources or Append
 * waiting for its answer when the connection is lost fails with SL_EDISCONNECTED (and so does
 * one made during the outage); an Append that fails that way may or may not have been
 * committed: its answer was lost.
 *
 * Clusters: storage may be P processes, process i hosting the workers w with w mod P == i.  The
 * client asks the process it is given for the cluster map and connects to every other process
 * too (one connection per process, all subscriptions to a process multiplexed on it).  Each
 * subscription goes to its worker's owner.  Everything above about reconnects holds per
 * connection: a process that goes away stalls only the subscriptions it hosts (the others go
 * on), and they resume exactly when it is back at the same address; SL_EV_RECONNECTED goes to
 * the queues with a subscription on that process.  A process that stays away past the retry
 * window ends the whole client (SL_EV_DISCONNECTED on every queue).  A process that comes back
 * as part of another cluster (another fingerprint) ends it with SL_ECLUSTER.
 */
#ifndef SLUICE_COMPUTE_H
#define SLUICE_COMPUTE_H

#include "sluice/sluice.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_client sl_client;
typedef struct sl_queue sl_queue;

/* A subscription as seen by its worker: an id that is never reused within a client, so a stale
 * one yields SL_ENOTSUB instead of touching freed memory. */
typedef struct sl_sub {
	uint64_t id;
} sl_sub;

typedef struct sl_client_config {
	const char *server;     /* "HOST:PORT" (HOST as in sl_storage_config.listen), copied at
	                           open: the whole list under 1024 bytes, each address under 128;
	                           default 127.0.0.1:6876.  "A,B,..." lists where to start: at
	                           open each is tried and the reachable one with the highest term
	                           is asked for the cluster map (ties: the first listed).  For a
	                           lone process (no --cluster) the list is its primary and
	                           standbys, tried again at every reconnect.  For a cluster, each
	                           process's addresses (primary and standbys) come from the map,
	                           and each connection fails over among them alone */
	uint32_t window;        /* initial credit window per subscription in bytes; default 256 KiB,
	                           min 128 KiB.  While the subscription's worker keeps up (its queue
	                           is empty when credit is granted) the window doubles, up to 4 MiB
	                           (or this value if larger): what a stalled worker can be owed stays
	                           bounded by the window it had when it stalled. */
	uint32_t max_frame;     /* largest frame accepted; default 4 MiB, at most 64 MiB */
	int connect_timeout_ms; /* per connection attempt (TCP connect, TLS handshake, Hello: each
	                           address is tried in turn); default 5000, also for <= 0 */
	uint32_t heartbeat_ms;  /* Ping an idle connection this often; default 1000 */
	uint32_t idle_timeout_ms; /* declare the connection dead after this much silence; default 10000 */
	uint32_t retry_for_ms;  /* keep reconnecting for this long after losing the connection;
	                           default 30000; 0 = never reconnect: SL_EV_DISCONNECTED at once */
	int one_process;        /* talk only to the process at server, even when it is one of a
	                           cluster: no connection to the others (Subscribes for their workers
	                           get SL_EWRONGOWNER), no failover to its standbys.  A standby
	                           following one process of a cluster uses this; default 0 */
	/* TLS (PEM files, read at open only): with tls_ca every connection speaks TLS and the
	 * server's certificate must be signed by tls_ca and name the host of its address (IP or
	 * DNS).  tls_cert and tls_key (both or neither, and only with tls_ca: else SL_ETLS at open)
	 * are presented to a server that asks for a client certificate (mutual TLS).  NULL:
	 * plaintext (the default). */
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	/* Sent in every Hello when not NULL (NUL-terminated, copied at open); a server configured
	 * with a token refuses a client without the same one (SL_EAUTH). */
	const char *auth_token;
} sl_client_config;

/* Fills the caller's cfg with the defaults above.  In the config given to sl_client_open a field
 * left 0 (or NULL) takes its default too, except retry_for_ms (0: never reconnect). */
SL_API void sl_client_config_init(sl_client_config *cfg);

/* Connects to cfg->server, exchanges Hello, asks for the cluster map, connects to every other
 * process of the cluster (Hello and cluster map on each: all must describe the same cluster), and
 * starts the runtime thread.  cfg (NULL: all defaults) is read during the call only.  A server that
 * does not know cluster maps is taken as a cluster of one.  Blocks: the TCP connection, TLS, Hello
 * and the cluster map each wait up to cfg->connect_timeout_ms, for every address tried.
 * Thread-safe (each call makes its own client).  Errors: SL_EARG (out NULL, a malformed address, a
 * server list too long or with an empty entry), SL_ENOMEM, -ECONNREFUSED (and other -errno),
 * SL_ETIMEDOUT, SL_EDISCONNECTED (the server closed the connection before answering), SL_EPROTO
 * (not a sluice server), SL_EVERSION, SL_ECLUSTER (processes disagree about the cluster, or one of
 * them gives no cluster map), SL_ETLS (a PEM file that cannot be loaded, TLS set-up or handshake
 * failed, or the server does not speak TLS, or speaks only TLS), SL_EAUTH (the server refused the
 * token, or wants one), and the code of any Error the server answers Hello with (e.g. SL_ELIMIT:
 * too many connections; SL_EFENCED: superseded by a promoted standby).  sl_client_last_error() on
 * the calling thread is cleared first and, on failure, says which process and why.  On success *out
 * is the caller's: free it with sl_client_close. */
SL_API int sl_client_open(const sl_client_config *cfg, sl_client **out);

/* Stops and joins the runtime thread, closes every connection, ends what is still in flight,
 * and frees c.  Every queue must be closed first, and no other thread may be inside a call on
 * c (a caller waiting in sl_client_list_sources or sl_client_append included) or enter one
 * later.  Accepts NULL. */
SL_API void sl_client_close(sl_client *c);

/* The session and epoch of the storage server's Hello on the current connection (or the last
 * one, during an outage), and how many times the client has connected again since
 * sl_client_open.  A session that changed across a reconnect means a restarted storage process;
 * an epoch that changed, a restart on the same data directory.  Any out pointer may be NULL.
 * 0, or SL_EARG (c NULL).  Thread-safe. */
SL_API int sl_client_server(sl_client *c, uint64_t *session, uint64_t *epoch,
                            uint64_t *reconnects);

/* The highest fencing term the client has seen from the process cfg->server is (the Cluster
 * frame's; 0 for a server that does not report one, or c NULL).  Terms are per process: of a
 * process's addresses (its primary and standbys) the client uses the reachable one with the
 * highest term, and never goes back to one with a lower term than it has seen from that
 * process.  Thread-safe. */
SL_API uint64_t sl_client_term(sl_client *c);

/* One source as reported by ListSources.  Everything it points to (name and kind, NUL-
 * terminated; uppers, `workers` entries) is owned by the array from sl_client_list_sources
 * and freed with it. */
typedef struct sl_source_info {
	char *name;
	char *kind;
	uint64_t id;
	uint32_t workers;
	uint64_t *uppers; /* per worker; SL_TIME_CLOSED when closed */
	uint64_t upper;   /* minimum over uppers */
} sl_source_info;

/* Asks storage for its sources and waits up to timeout_ms (negative = forever) for the answer
 * (a caller that must first wait for another thread's ListSources does not count that wait).
 * On success *out is an array of *n entries owned by the caller: free it with
 * sl_source_info_free(*out, *n).  In a cluster every process is asked and the answers merged:
 * the upper of worker w comes from its owner (w mod P), `upper` is the minimum over all
 * workers.  The worker counts are remembered for sl_client_append.  Thread-safe.  Errors:
 * SL_EARG (c, out or n NULL), SL_ENOMEM, SL_ETIMEDOUT, SL_EDISCONNECTED (a process is not
 * connected: an outage, or the client has ended), SL_ECLUSTER (processes list different
 * sources).  On SL_EDISCONNECTED and SL_ECLUSTER sl_client_last_error says why. */
SL_API int sl_client_list_sources(sl_client *c, int timeout_ms, sl_source_info **out, size_t *n);
/* Frees the n entries of infos and the array (what sl_client_list_sources returned).  Accepts
 * NULL.  Any thread. */
SL_API void sl_source_info_free(sl_source_info *infos, size_t n);

/* Sends one atomic batch (ups[0..n-1], read during the call: the rows are copied) to an ingest
 * source and waits up to timeout_ms (negative = forever) for storage to accept it.  Only diff
 * and row of each update are used; storage picks the time and returns it in *time_out (which
 * may be NULL).  Thread-safe: one batch at a time per client; a second caller waits for the
 * first to finish, and that wait does not count against its timeout.  Errors: SL_EARG (c NULL,
 * or ups NULL with n > 0), SL_ETOOBIG (a row over SL_ROW_MAX bytes, found before anything is
 * sent; or over storage's limits on a row, a batch's bytes or its updates), SL_ENOMEM, and
 * storage's answer: SL_ENOSOURCE, SL_EKIND (not an ingest source), SL_EREJECTED (e.g. the
 * process is a standby not promoted), SL_EWRONGOWNER (a row routed to a worker this process
 * does not host), SL_ECLOSED (a worker of the source is closed), SL_ETIME, -errno (storage
 * could not write it, e.g. -ENOSPC); and from the wait: SL_ETIMEDOUT (no answer in time: the
 * batch may still be committed), SL_EDISCONNECTED (the connection was down when the batch was
 * to be sent, or was lost before the answer: then committed or not, unknown).  On every
 * failure but SL_EARG, SL_ENOMEM, SL_ETIMEDOUT and the client's own SL_ETOOBIG,
 * sl_client_last_error gives the reason.
 *
 * In a cluster of P > 1 processes the batch is split by owner process (row routed to worker
 * sl_ingest_route(row, W), owned by process worker mod P; W is learnt with a ListSources, once
 * per source, waiting up to timeout_ms too, so the call may also fail as sl_client_list_sources
 * does) and each process gets its part.  What is atomic is each process's part: it is
 * committed whole or not at all, at one time of that process's choosing.  The parts are not
 * atomic together: processes commit at different times (*time_out is the largest), and when
 * one part fails the others may be committed already: then the call fails with SL_EREJECTED
 * and sl_client_last_error names the process that failed, why, and the processes whose parts
 * were committed.  When no part was committed the error is the first process's own (e.g.
 * SL_ENOSOURCE, SL_EDISCONNECTED).  A timeout says nothing about any part. */
SL_API int sl_client_append(sl_client *c, uint64_t source, const sl_update *ups, size_t n,
                            int timeout_ms, uint64_t *time_out);

/* ---- the producer: pipelined appends to an ingest source ----
 *
 * A producer gathers the updates given to sl_producer_append into batches and sends each batch
 * as soon as it is cut, without waiting for the answers of the batches before it: up to
 * cfg.inflight batches are sent and not yet answered at once (the window).  A batch is cut when
 * it holds cfg.batch_rows updates or cfg.batch_bytes bytes (12 per update plus its row), when
 * cfg.linger_ms have passed since its first update, or on sl_producer_flush.  Batches are
 * numbered 1, 2, ... in the order they are cut; storage commits each atomically (in a cluster:
 * each process's part of it, as sl_client_append describes, routed the same way) and the
 * producer reports each batch's outcome, a completion, in that order: sl_producer_next, or poll
 * sl_producer_fd.  Storage commits a connection's batches in the order they were sent, so batch
 * i is committed at a time no later than batch i+1's (a time of each process's choosing).
 *
 * Memory: a batch's bytes are copied once, into the batch being built; they are handed to the
 * runtime thread when it is cut and freed once written to the socket.  So the producer holds at
 * most the open batch and the window's batches (at most cfg.inflight_bytes, or one batch),
 * whatever the size of the input.  Back-pressure: when the window is full, a cut waits for storage to answer the
 * oldest batch (up to cfg.timeout_ms), or in cfg.nonblocking mode fails at once with SL_EAGAIN.
 * The completions waiting to be taken are bounded too: at most 2 x inflight batches may be cut
 * and not yet taken with sl_producer_next; past that a cut fails with SL_EAGAIN in both modes
 * (waiting could never end: only the caller takes completions).
 *
 * Errors: a batch that fails (storage's refusal, e.g. a row over its limit; SL_EDISCONNECTED when
 * the connection was lost: committed or not, unknown) does not stop the producer: the batches
 * already sent behind it are answered on their own (and may be committed), and later appends
 * go on, unless cfg.stop_on_error.  A caller that must not commit anything past a failed batch
 * sets it and keeps the window at 1.
 *
 * Threads: a producer belongs to one thread at a time (it may move between calls), like a
 * queue; sl_producer_fd may be called from any thread.  The runtime thread files answers into
 * the producer under its own mutex and never waits for the caller.  Order of the end: close
 * every producer before its client. */
typedef struct sl_producer sl_producer;

typedef struct sl_producer_config {
	uint32_t batch_rows;  /* cut a batch at this many updates; default 65536 */
	uint64_t batch_bytes; /* ... or at this many bytes; default 8 MiB, at least 64 KiB */
	uint32_t linger_ms;   /* ... or this long after its first update; default 10 */
	uint32_t inflight;    /* batches sent and not yet answered (the window); default 8, at
	                         most 1024 */
	uint64_t inflight_bytes; /* and at most this many bytes in those batches (one batch is
	                         always allowed); default 32 MiB */
	int nonblocking;      /* a full window: SL_EAGAIN at once instead of waiting */
	int stop_on_error;    /* once a batch is answered with an error, cut no more: appends
	                         and flushes fail with SL_EREJECTED (batches already sent are
	                         still answered).  With inflight 1 nothing after a failed batch
	                         is ever sent */
	int timeout_ms;       /* how long a cut waits for room in a full window (blocking mode),
	                         also the wait for the source's worker count at open in a cluster;
	                         default (0) 30000, negative = forever */
} sl_producer_config;

/* One batch's outcome, filled by sl_producer_next into the caller's struct. */
typedef struct sl_completion {
	uint64_t batch;      /* 1, 2, ...: the order the batches were cut */
	uint64_t rows;       /* updates in the batch */
	int code;            /* 0: committed; else why not (see sl_producer_next) */
	uint64_t time;       /* code 0: the time storage gave it (the largest of its parts') */
	const char *message; /* code != 0: why, NUL-terminated, naming the storage process in a
	                        cluster; "" otherwise.  Valid until the next sl_producer_next or
	                        sl_producer_close on p */
} sl_completion;

/* Fills the caller's cfg with the defaults above (a field left 0 in the config given to
 * sl_producer_open takes its default too). */
SL_API void sl_producer_config_init(sl_producer_config *cfg);

/* Opens a producer appending to the ingest source `source` through c.  cfg (NULL: defaults) is
 * read during the call only.  In a cluster the source's worker count is learnt with a
 * ListSources (blocking up to cfg->timeout_ms; the errors of sl_client_list_sources, and
 * SL_ENOSOURCE for an unknown source); with one process nothing is asked, and an unknown
 * source or one of another kind fails each batch (SL_ENOSOURCE, SL_EKIND).  On success *out is
 * the caller's: free it with sl_producer_close, before sl_client_close.  Errors: SL_EARG (c or
 * out NULL, cfg->inflight over 1024), SL_ENOMEM, -errno (eventfd, timerfd, epoll).  Thread-safe. */
SL_API int sl_producer_open(sl_client *c, uint64_t source, const sl_producer_config *cfg,
                            sl_producer **out);

/* Adds one update (diff, row: copied during the call) to the open batch; *batch (if not NULL)
 * is the number of the batch it went into.  May first cut the open batch (it is full, or its
 * linger has passed): that cut may wait for room as the config says.  On any error the update
 * was not added (call again with it).  Errors: SL_EARG (p NULL, row.ptr NULL with row.len > 0),
 * SL_ETOOBIG (a row over SL_ROW_MAX bytes), SL_EAGAIN (no room: take completions with
 * sl_producer_next, then call again), SL_ETIMEDOUT (blocking mode: no room within
 * cfg.timeout_ms), SL_EREJECTED (cfg.stop_on_error, and a batch failed), SL_ENOMEM.  Does not block otherwise (no network wait). */
SL_API int sl_producer_append(sl_producer *p, int64_t diff, sl_bytes row, uint64_t *batch);

/* Cuts the open batch now (nothing when it is empty), waiting for room as sl_producer_append
 * does; it does not wait for the answer.  0, SL_EARG, SL_EAGAIN, SL_ETIMEDOUT, SL_EREJECTED,
 * SL_ENOMEM. */
SL_API int sl_producer_flush(sl_producer *p);

/* Drops the updates of the open batch (appended, not yet cut) and returns how many (>= 0), or
 * SL_EARG.  An open batch that is due (full, or its linger has passed) is cut instead, waiting
 * for room as sl_producer_flush does (its errors), and 0 is returned.  Does not touch batches
 * already cut. */
SL_API long long sl_producer_discard(sl_producer *p);

/* Waits up to timeout_ms (negative = forever, 0 = don't wait) for the oldest batch not yet
 * taken to be answered: 1 with *out filled, 0 on timeout (or when no batch is cut and the open
 * one is empty: nothing to wait for), SL_EARG.  While it waits it cuts the open batch when its
 * linger passes (if there is room).  out->code: 0 (committed at out->time), or storage's
 * refusal as sl_client_append reports it (SL_ENOSOURCE, SL_EKIND, SL_ETOOBIG, SL_EREJECTED,
 * SL_EWRONGOWNER, SL_ECLOSED, -errno; in a cluster SL_EREJECTED when some parts were committed
 * and another was not), or SL_EDISCONNECTED (the connection was down when the batch was sent,
 * or lost before its answer: committed or not, unknown; it is never resent), SL_ENOMEM. */
SL_API int sl_producer_next(sl_producer *p, sl_completion *out, int timeout_ms);

/* Batches cut whose completion was not yet taken, and updates in the open batch (either
 * pointer may be NULL).  0 or SL_EARG.  A clean end: sl_producer_flush, then sl_producer_next
 * until *cut is 0. */
SL_API int sl_producer_pending(const sl_producer *p, uint64_t *cut, uint64_t *open_rows);

/* A file descriptor (owned by p) that polls readable when sl_producer_next may have something
 * to do: a completion arrived, or the open batch's linger passed.  Then call sl_producer_next
 * with timeout 0 until it returns 0 (it may wake for nothing).  Do not read or close it; poll
 * or epoll only.  SL_EARG for p NULL.  Any thread. */
SL_API int sl_producer_fd(const sl_producer *p);

/* Drops the open batch and frees p: batches in flight are not waited for (they may still be
 * committed; their answers are dropped).  Accepts NULL.  On the producer's thread. */
SL_API void sl_producer_close(sl_producer *p);

/* Why the last sl_client_open, sl_client_list_sources or sl_client_append of this thread
 * failed: the message of the Error frame storage answered with, or the client's own
 * description (see each function for the failures that set it; sl_storage_follow sets it too).
 * sl_client_open clears it first; the others leave it as it was when they succeed.  The string
 * is the calling thread's own (thread-local): never NULL, not to be freed, its text replaced
 * by the next of those calls on this thread. */
SL_API const char *sl_client_last_error(void);

/* The number of storage processes of the cluster the client is connected to (1 for a lone
 * process), fixed at sl_client_open, in *processes (if not NULL).  0, or SL_EARG (c NULL).
 * Thread-safe. */
SL_API int sl_client_cluster(sl_client *c, uint32_t *processes);

/* Opens a queue for the calling dataflow worker; it stays usable until sl_queue_close, and must
 * be closed before its client.  Thread-safe.  On success *out is the caller's: free it with
 * sl_queue_close.  Errors: SL_EARG (c or out NULL), SL_ENOMEM, -errno (eventfd). */
SL_API int sl_queue_open(sl_client *c, sl_queue **out);

/* Unsubscribes every subscription still made through q, drops the events still queued, and
 * frees q: q, its subscriptions and every event it returned are invalid afterwards.  The
 * queue's fd is closed now or a little later (when the runtime lets go of the last
 * subscription): take it out of any poll set first.  On the queue's thread.  Accepts NULL. */
SL_API void sl_queue_close(sl_queue *q);

/* A file descriptor (an eventfd, owned by q) that is readable while q may have an event: when
 * it polls readable, call sl_queue_next with timeout 0 until it returns 0 (the fd then stops
 * being readable until a new item arrives; it may wake for an item that yields no event).  Do
 * not read or close it; use it with poll/epoll only.  SL_EARG for q NULL.  Any thread. */
SL_API int sl_queue_fd(const sl_queue *q);

/* Subscribes (dataflow, source, worker) for this queue, starting at `from` (0 = everything).
 * Returns at once: storage's answer arrives as SL_EV_SUBSCRIBED or SL_EV_SUBSCRIBE_ERROR (an
 * unknown source or worker is found only then).  *out is written on success; the subscription then
 * belongs to q (and to its thread) until sl_unsubscribe, its SUBSCRIBE_ERROR or DISCONNECTED event,
 * or sl_queue_close.  Errors: SL_EARG (q or out NULL), SL_ENOMEM, SL_EDUPLICATE when this client
 * (through any of its queues) has the same triple subscribed and not yet ended (by sl_unsubscribe,
 * sl_queue_close, or its worker taking its SUBSCRIBE_ERROR or DISCONNECTED); SL_EDISCONNECTED once
 * the client has ended (the retry window ran out, or SL_ECLUSTER).  During an outage inside the
 * retry window it succeeds, and the Subscribe is sent when a connection is back.  On the queue's
 * thread. */
SL_API int sl_subscribe(sl_queue *q, uint64_t dataflow, uint64_t source, uint32_t worker,
                        uint64_t from, sl_sub *out);

/* Ends a subscription made through q; no further event for it is returned by sl_queue_next.
 * Storage frees everything the subscription held.  Errors: SL_EARG (q NULL), SL_ENOTSUB (not a
 * live subscription of q: unknown, ended, or made through another queue), SL_ENOMEM (it stays
 * subscribed).  On the queue's thread. */
SL_API int sl_unsubscribe(sl_queue *q, sl_sub sub);

typedef enum sl_event_kind {
	SL_EV_SUBSCRIBED = 1,  /* storage accepted: since and upper are set (once per
	                          subscription: resubscribing after a reconnect gives none) */
	SL_EV_SUBSCRIBE_ERROR, /* storage refused: code and message are set; the sub has ended.
	                          Also after SUBSCRIBED, when a resubscription is refused.  Codes:
	                          SL_ENOSOURCE, SL_ENOWORKER, SL_EWRONGOWNER, SL_EDUPLICATE,
	                          SL_ECREDIT, SL_ELIMIT, SL_ENOMEM */
	SL_EV_MESSAGES,        /* updates at one time: iterate with sl_iter_update */
	SL_EV_PROGRESS,        /* frontier changes: iterate with sl_iter_change */
	SL_EV_DISCONNECTED,    /* the connection to storage was lost (after the retry window, if
	                          any): code, message; sub is 0; every sub of this queue ended.  The
	                          client has ended: sl_subscribe fails from now on.  Only queues
	                          with a subscription get it.  code says why the connection went:
	                          e.g. SL_EDISCONNECTED (closed by storage), SL_EIDLE, -errno,
	                          SL_EPROTO, SL_ECLUSTER, or an Error frame's (SL_EFENCED, ...) */
	SL_EV_RECONNECTED,     /* the runtime connected to storage again and is resuming this
	                          queue's subscriptions: session and epoch of the server's Hello
	                          (compare with an earlier one to tell a restarted process); sub is
	                          0.  Informational: nothing to do, the streams go on seamlessly */
	SL_EV_RESNAPSHOT,      /* a resumed subscription restarts from a consolidated snapshot at
	                          `since` (its resume point was before storage's compaction frontier):
	                          the worker must discard what it built from this subscription's
	                          earlier updates and rebuild from the MESSAGES that follow (the
	                          snapshot, all at time `since`, then the stream from there).  The
	                          frontier does not go backwards.  Only from a storage process
	                          configured with `retain` (sl_storage_config) */
	SL_EV_WATERMARK,       /* only on a storage standby's replica link (src/replica): the
	                          group's high watermark of the worker is `upper` */
} sl_event_kind;

/* An event, filled by sl_queue_next into the caller's struct.  sub, dataflow, source, worker
 * and frontier are set for every kind but DISCONNECTED and RECONNECTED; the other fields for
 * the kinds named beside them, 0 (NULL) otherwise.  body and message point into the queue's
 * memory: valid until the next sl_queue_next or sl_queue_close on the queue (copy what must
 * live longer). */
typedef struct sl_event {
	sl_event_kind kind;
	sl_sub sub;
	uint64_t dataflow;
	uint64_t source;
	uint32_t worker;
	sl_collection collection; /* MESSAGES, PROGRESS */
	uint64_t time;            /* MESSAGES: the time of every update in it */
	uint32_t count;           /* MESSAGES: updates; PROGRESS: changes */
	sl_bytes body;            /* MESSAGES/PROGRESS: encoded updates/changes (for the iterators) */
	uint64_t frontier;        /* the subscription's frontier after this event: the minimum over
	                             its ok and err collections; SL_TIME_CLOSED once closed */
	uint64_t since;           /* SUBSCRIBED, RESNAPSHOT */
	uint64_t upper;           /* SUBSCRIBED, RESNAPSHOT: the worker's upper at storage */
	int code;                 /* SUBSCRIBE_ERROR, DISCONNECTED: an SL_E* or -errno */
	const char *message;      /* SUBSCRIBE_ERROR, DISCONNECTED: NUL-terminated, never NULL */
	uint64_t session;         /* RECONNECTED: the server's session */
	uint64_t epoch;           /* RECONNECTED: the server's epoch */
} sl_event;

/* Waits up to timeout_ms (negative = forever, 0 = don't wait) for the next event of q.  Returns
 * 1 with *ev filled, 0 on timeout, or SL_EARG (q or ev NULL); there is no other error: a lost
 * client arrives as a DISCONNECTED event.  Everything *ev points to stays valid until the next
 * sl_queue_next or sl_queue_close on q.  Taking an event counts as consuming it: its bytes are
 * granted back to storage as credit (in batches of a quarter of the window).  A queue without
 * a subscription waits out its timeout even when the client has ended.  On the queue's
 * thread. */
SL_API int sl_queue_next(sl_queue *q, sl_event *ev, int timeout_ms);

/* The current frontier of a live subscription of q (SL_TIME_CLOSED once closed), as of the
 * events already taken; 0 if unknown (also the frontier of a subscription that has not moved
 * yet).  On the queue's thread. */
SL_API uint64_t sl_sub_frontier(const sl_queue *q, sl_sub sub);

/* Iterates over the updates of a MESSAGES event or the (time, delta) changes of a PROGRESS
 * event: initialise with the event, then call next until it returns 0.  The caller owns the
 * sl_iter; it points into the event's body, so it is valid as long as the event is.  No
 * allocation, no lock: safe on any thread while the event is valid. */
typedef struct sl_iter {
	sl_bytes rest;
} sl_iter;

/* An event of another kind (or ev NULL) gives an iterator that yields nothing. */
SL_API void sl_iter_init(sl_iter *it, const sl_event *ev);
/* 1 with *row (pointing into the event: valid as long as the event) and *diff, or 0 at the
 * end. */
SL_API int sl_iter_update(sl_iter *it, sl_bytes *row, int64_t *diff);
/* 1 with *time and *delta, or 0 at the end. */
SL_API int sl_iter_change(sl_iter *it, uint64_t *time, int64_t *delta);

#ifdef __cplusplus
}
#endif
#endif
