/*
 * storage.h - embed a sluice storage runtime.
 *
 * The runtime owns one network thread: it accepts compute connections, serves their
 * subscriptions from each worker's log (a subscription is a cursor into the log, bounded by the
 * credit its client granted) and answers ListSources and ingest Appends.  The embedding program's
 * own threads (its "storage workers") hand their captured update streams to the runtime with
 * sl_source_append / sl_source_advance / sl_source_close_worker; those calls never block on the
 * network and never run network code.
 *
 * Lifecycle: sl_storage_open (binds the listening socket) -> sl_source_register... ->
 * sl_storage_start (starts the network thread) -> ... -> sl_storage_close.  Sources may also be
 * registered after start.
 */
#ifndef SLUICE_STORAGE_H
#define SLUICE_STORAGE_H

#include "sluice/sluice.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_storage sl_storage;
typedef struct sl_source sl_source;

/* When the durable log is forced to the device (see docs/ARCHITECTURE.md, "Durability").
 * Every policy survives a crash of the process: committed blocks are in the page cache. */
typedef enum sl_fsync_mode {
	SL_FSYNC_INTERVAL = 0, /* a background thread syncs every fsync_interval_ms (default) */
	SL_FSYNC_ALWAYS,       /* sync before an upper is published: survives a machine crash */
	SL_FSYNC_NEVER,        /* leave it to the kernel's writeback */
} sl_fsync_mode;

typedef struct sl_storage_config {
	const char *listen;       /* "HOST:PORT"; port 0 picks an ephemeral port. Default 127.0.0.1:6876 */
	uint32_t max_frame;       /* largest frame accepted or sent; default 4 MiB */
	uint32_t heartbeat_ms;    /* Ping an idle connection this often; default 1000 */
	uint32_t idle_timeout_ms; /* drop a connection silent for this long; default 10000 */
	size_t out_high_water;    /* stop filling a connection's output above this; default 1 MiB */
	uint64_t max_batch_bytes; /* largest ingest batch staged per connection; default 256 MiB */
	const char *data_dir;     /* durable logs live here; NULL keeps every log in memory */
	sl_fsync_mode fsync;      /* default SL_FSYNC_INTERVAL */
	uint32_t fsync_interval_ms; /* default 1000 */
	uint64_t segment_size;    /* bytes per log segment file, a power of two; default 16 MiB */
	/* Full history is kept for the last `retain` time units of each worker; before that
	 * (`since`) updates are consolidated and whole old segments removed.  0: keep all. */
	uint64_t retain;
	/* Called with a one-line notice the operator should see (e.g. a torn log tail truncated
	 * at recovery), on the thread that caused it.  NULL: notices are dropped. */
	void (*warn)(void *arg, const char *msg);
	void *warn_arg;
	/* TLS (PEM files, read at open).  With tls_cert and tls_key every connection must speak
	 * TLS; a plaintext client is answered with a plaintext Error(SL_ETLS) and closed.  With
	 * tls_client_ca too, clients must present a certificate signed by it (mutual TLS).
	 * tls_ca makes this process's own outgoing connections (a standby following its primary,
	 * the fencer, the peer check) use TLS, verifying the other process against it and
	 * presenting tls_cert/tls_key when asked.  NULL: plaintext. */
	const char *tls_cert;
	const char *tls_key;
	const char *tls_client_ca;
	const char *tls_ca;
	/* Authentication (NUL-terminated, copied at open): every client must send this token in
	 * its Hello before anything else is done for it (Error(SL_EAUTH) and close otherwise);
	 * the outgoing connections send it too.  NULL: no authentication. */
	const char *auth_token;
	/* Limits against misbehaving or hostile clients (docs/ARCHITECTURE.md, "Limits and hostile
	 * clients").  0 takes the default. */
	uint32_t max_connections;   /* beyond it a new connection gets Error(SL_ELIMIT) and is
	                               closed; default 1024 */
	uint32_t max_subscriptions; /* live subscriptions per connection (SubscribeError
	                               SL_ELIMIT beyond); default 65536 */
	uint32_t subscribe_rate;    /* Subscribe+Unsubscribe requests per second per connection
	                               (token bucket refill); default 10000 */
	uint32_t subscribe_burst;   /* the bucket's size; default max_subscriptions, so a client
	                               may always resubscribe everything at once.  Beyond the
	                               bucket: Error(SL_ELIMIT, fatal) and the connection closes */
	uint32_t handshake_timeout_ms; /* no valid Hello within this long after accept:
	                               Error(SL_ETIMEDOUT, fatal); default 5000 */
	size_t max_output;          /* output buffered for one connection; a connection whose
	                               unsent output passes it is closed (with a warn notice);
	                               default 64 MiB (or 4 * out_high_water + max_frame if that
	                               is more); a smaller value set here is refused */
	uint32_t max_batch_rows;    /* updates per ingest batch; default 4194304 */
	uint32_t max_row;           /* bytes per row in an Append; default and maximum SL_ROW_MAX */
} sl_storage_config;

/* Fills cfg with the defaults above. */
SL_API void sl_storage_config_init(sl_storage_config *cfg);

/* Creates a runtime and binds its listening socket (so a port-0 listener has its port now).
 * cfg is read during the call only.  On success *out is owned by the caller: free it with
 * sl_storage_close.  Errors: -errno from socket/bind/listen, SL_EARG for a bad address or a
 * bad limit (max_row over SL_ROW_MAX, max_output set below 4 * out_high_water + max_frame). */
SL_API int sl_storage_open(const sl_storage_config *cfg, sl_storage **out);

/* Makes this runtime process `process` of a storage cluster of n processes at addrs[0..n-1]
 * (each "HOST:PORT", copied): it hosts, of every source, the workers w with w mod n == process,
 * and answers requests for the others with SL_EWRONGOWNER naming their process and address.
 * `fingerprint` identifies the cluster's configuration (its address list and source specs):
 * every process of one cluster must be given the same, and clients refuse to mix processes
 * that differ.  Call after sl_storage_open and before registering sources.  Without this call
 * the runtime is a cluster of one.  SL_EARG for process >= n or n == 0. */
SL_API int sl_storage_set_cluster(sl_storage *st, const char *const *addrs, uint32_t n,
                                  uint32_t process, uint64_t fingerprint);

/* Whether this process hosts the worker (always, outside a cluster).  Sources append to and
 * advance only the workers their process hosts. */
SL_API int sl_source_hosts(const sl_source *src, uint32_t worker);

/* A one-line description of why the last sl_storage_open or sl_source_register on this
 * thread failed (e.g. "log sources/c/0/ok is corrupt: block at 0000000000000000.seg offset
 * 4096 fails its checksum"), or "" . */
SL_API const char *sl_storage_last_error(void);

/* How many times this data directory has been opened (1 on the first start); 0 without a
 * data directory.  Sent in Hello, so clients can tell a restarted process from the same one. */
SL_API uint64_t sl_storage_epoch(const sl_storage *st);

/* The data directory (as configured), or NULL when logs are kept in memory.  A source that
 * must remember where it stood in its input (an offset, a position) keeps its state there. */
SL_API const char *sl_storage_data_dir(const sl_storage *st);

/* The TCP port the runtime listens on. */
SL_API int sl_storage_port(const sl_storage *st);

/* Serves the runtime's metrics in the Prometheus text exposition format at GET /metrics on
 * `hostport` ("HOST:PORT"; port 0 picks a free port, written to *port_out if not NULL), from
 * an HTTP server thread of its own (libmicrohttpd).  Each scrape is a report the network
 * thread builds on request (see docs/ARCHITECTURE.md, "Operating"); until sl_storage_start it
 * answers 503.  Call once, after sl_storage_open; sl_storage_close stops it.  Errors: SL_EARG
 * (a bad address, or called twice), -errno from socket/bind/listen, SL_EIO (the HTTP server
 * did not start); see sl_storage_last_error. */
SL_API int sl_storage_metrics_listen(sl_storage *st, const char *hostport, int *port_out);

/* Starts the network thread.  Call once. */
SL_API int sl_storage_start(sl_storage *st);

/* Stops the network thread, closes every connection and frees every source and log.  Sources
 * handles become invalid; the caller must have stopped every thread that appends first.
 * Accepts NULL. */
SL_API void sl_storage_close(sl_storage *st);

/* Makes this runtime a standby of the storage process at `primary` ("HOST:PORT"): a
 * thread follows it over the sluice protocol (as a compute client, reconnecting by itself),
 * registers every source of the primary here in the same order (so ids agree; register no
 * source of your own), and writes each worker's complete times into the local logs, which
 * serve read subscriptions as usual.  Ingest Appends are refused (SL_EREJECTED) until a client
 * sends Promote: then the follower stops, the sources of kind "ingest" take Appends, and the
 * term is the primary's + 1.  Replication is asynchronous: a promoted standby has what it had
 * followed.  For a process of a cluster, first call sl_storage_set_cluster with the primary's
 * list and process (the fingerprint is then taken from the primary, and kept in
 * DATA/fingerprint): the standby follows and serves only that process's workers.  Call after
 * sl_storage_open, before or after sl_storage_start.  Errors: SL_EARG (already a standby),
 * SL_ECLUSTER (the primary is not the process this runtime was configured for: a process of a
 * cluster for a runtime without one, or another list or process; see sl_storage_last_error),
 * -errno. */
SL_API int sl_storage_follow(sl_storage *st, const char *primary);

/* 1 while this runtime follows a primary and was not promoted, else 0. */
SL_API int sl_storage_is_standby(const sl_storage *st);

/* The fencing term: persisted in DATA/term, 1 on a fresh data directory; a standby takes its
 * primary's when it learns it, and promotion adds 1.  Sent in the Cluster frame: clients given
 * several addresses of one process use the one with the highest term. */
SL_API uint64_t sl_storage_term(const sl_storage *st);

/* Flags for sl_source_register. */
#define SL_SOURCE_INGEST 0x01 /* clients may Append batches (the `ingest` kind) */

/* Registers a source named `name` (unique; letters, digits, '_', '-', '.') of the given kind
 * (free text shown by ListSources) with `workers` workers.  Without a data directory each
 * worker starts with upper 0 and empty collections.  With one, the source's logs are opened
 * and recovered: each worker starts at its durable upper with everything before it, and any
 * update at a time not yet complete when the process stopped is dropped (the source produces
 * those times again).  Thread-safe.  *out stays valid until sl_storage_close.
 * Errors: SL_EDUPLICATE, SL_EARG, SL_EIO (corrupt log, or a data directory made for another
 * kind or worker count: see sl_storage_last_error), -errno. */
SL_API int sl_source_register(sl_storage *st, const char *name, const char *kind, uint32_t workers,
                              unsigned flags, sl_source **out);

SL_API uint64_t sl_source_id(const sl_source *src);
SL_API uint32_t sl_source_workers(const sl_source *src);

/* Appends n updates to one collection of one worker.  Every update's time must be >= the
 * worker's upper (else SL_ETIME, nothing appended); rows at most SL_ROW_MAX bytes (else
 * SL_ETOOBIG).  Subscribers receive a time's updates once sl_source_advance has moved the
 * upper past it.  A full disk fails with -ENOSPC (what was appended before stays; retry once
 * space returns).  Thread-safe; never blocks on the network.  Rows are copied. */
SL_API int sl_source_append(sl_source *src, uint32_t worker, sl_collection coll,
                            const sl_update *ups, size_t n);

/* Advances the worker's upper to `upper` (> current; an equal value is a no-op, a lower one
 * SL_ETIME).  SL_TIME_CLOSED closes the worker.  With a data directory the upper is written to
 * the log first (and with SL_FSYNC_ALWAYS synced) and only then published, so no subscriber
 * ever sees a frontier that a crash could take back.  Thread-safe. */
SL_API int sl_source_advance(sl_source *src, uint32_t worker, uint64_t upper);

/* Same as sl_source_advance(src, worker, SL_TIME_CLOSED). */
SL_API int sl_source_close_worker(sl_source *src, uint32_t worker);

/* The worker's current upper (SL_TIME_CLOSED once closed). Thread-safe. */
SL_API uint64_t sl_source_upper(const sl_source *src, uint32_t worker);

/* Appends one atomic batch to an ingest source the way a client Append does: every update
 * gets the same time T = the largest upper over the source's workers, rows are routed to
 * worker hash(row) mod W, and then every worker's upper advances to T + 1.  Updates' own time
 * fields are ignored.  *time_out receives T.  Thread-safe. */
SL_API int sl_source_ingest(sl_source *src, const sl_update *ups, size_t n, uint64_t *time_out);

#ifdef __cplusplus
}
#endif
#endif
