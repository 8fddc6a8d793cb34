/*
 * storage.h - embed a sluice storage runtime.
 *
 * The runtime owns one network thread: it accepts compute connections, serves their
 * subscriptions from each worker's log (a subscription is a cursor into the log, bounded by the
 * credit its client granted) and answers ListSources and ingest Appends.  The embedding program's
 * own threads (its "storage workers") hand their captured update streams to the runtime with
 * sl_source_append / sl_source_advance / sl_source_close_worker; those calls never wait for the
 * network and never run network code (they may wait for a worker's lock: see below).
 *
 * Lifecycle: sl_storage_open (binds the listening socket) -> sl_source_register... ->
 * sl_storage_start (starts the network thread) -> ... -> sl_storage_close.  Sources may also be
 * registered after start.
 *
 * Conventions (errors, ownership, threads): see sluice.h.  Here in particular:
 *
 * Threads of the runtime: the network thread (sl_storage_start); with a data directory and
 * SL_FSYNC_INTERVAL, a sync thread (sl_storage_open); a standby's follower (sl_storage_follow)
 * and, once promoted, its fencer; in a cluster, a thread greeting the other processes
 * (sl_storage_start); the metrics HTTP server's (sl_storage_metrics_listen).  None of them runs
 * user code except the warn callback.
 *
 * Which thread may call what:
 *  - The control calls sl_storage_set_cluster, sl_storage_follow, sl_storage_metrics_listen,
 *    sl_storage_start and sl_storage_close: one at a time, from the thread that owns the
 *    runtime (not concurrently with each other, nor from the warn callback).
 *  - sl_source_register, sl_source_append, sl_source_advance, sl_source_close_worker,
 *    sl_source_ingest and sl_source_upper: thread-safe.  Calls on one worker are serialised by
 *    that worker's lock, calls on different workers run in parallel; sl_source_ingest, and an
 *    ingest Append from a client (committed on the network thread), lock every worker of their
 *    source at once.
 *  - The getters (sl_storage_epoch, _data_dir, _port, _term, _is_standby, sl_source_id,
 *    _workers, _hosts) and sl_storage_last_error: thread-safe; they do not block.
 *  - sl_storage_close ends everything: no other thread may be inside, or later enter, any call
 *    on the runtime or on one of its sources.
 *
 * The warn callback (sl_storage_config.warn) is called with a NUL-terminated line, valid until
 * it returns, from whichever thread has the news: the network thread (refused or closed
 * connections, limits, compaction), the thread inside sl_source_register (a log's recovery),
 * the follower, the fencer or the greeting thread.  So it may run on several threads at once
 * and must be thread-safe.  It should return quickly (on the network thread it holds up every
 * connection); it may call sl_strerror and the getters, and must not call sl_storage_close.
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
	/* "HOST:PORT", copied at open: HOST an IPv4 address, "localhost", or empty for every
	 * address; port 0 picks an ephemeral port (see sl_storage_port).  Default 127.0.0.1:6876 */
	const char *listen;
	uint32_t max_frame;       /* largest frame accepted or sent, 128 KiB to 64 MiB; default 4 MiB */
	uint32_t heartbeat_ms;    /* Ping an idle connection this often; default 1000 */
	uint32_t idle_timeout_ms; /* drop a connection silent for this long; default 10000 */
	size_t out_high_water;    /* stop filling a connection's output above this; default 1 MiB */
	uint64_t max_batch_bytes; /* largest ingest batch staged per connection; default 256 MiB */
	const char *data_dir;     /* durable logs live here (copied at open; created if missing);
	                             NULL keeps every log in memory */
	sl_fsync_mode fsync;      /* default SL_FSYNC_INTERVAL */
	uint32_t fsync_interval_ms; /* default 1000 */
	uint64_t segment_size;    /* bytes per log segment file, a power of two; default 16 MiB */
	/* Full history is kept for the last `retain` time units of each worker; before that
	 * (`since`) updates are consolidated and whole old segments removed.  0: keep all. */
	uint64_t retain;
	/* Called with a one-line notice the operator should see (e.g. a torn log tail truncated
	 * at recovery), on the thread that caused it: see "The warn callback" above.  NULL:
	 * notices are dropped.  warn and warn_arg are kept: warn_arg must stay valid until
	 * sl_storage_close returns. */
	void (*warn)(void *arg, const char *msg);
	void *warn_arg;
	/* TLS (PEM files).  With tls_cert and tls_key every connection must speak TLS; a
	 * plaintext client is answered with a plaintext Error(SL_ETLS) and closed.  With
	 * tls_client_ca too, clients must present a certificate signed by it (mutual TLS).
	 * tls_ca makes this process's own outgoing connections (a standby following its primary,
	 * the fencer, the peer check) use TLS, verifying the other process against it and
	 * presenting tls_cert/tls_key when asked.  NULL: plaintext.  The paths are copied and the
	 * files read at open; a standby's follower reads tls_ca, tls_cert and tls_key again each
	 * time it connects to its primary, so those files must stay in place. */
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
	/* Recovery progress of a durable log: called on the thread of sl_source_register while a
	 * source's worker logs are recovered, before each segment file is walked (segment of
	 * segments, for the ok log then the err log of worker `worker` of `workers`).  The source
	 * name is borrowed for the call.  It must not call into the runtime.  Kept like warn:
	 * progress_arg must stay valid until sl_storage_close returns.  NULL: not called. */
	void (*progress)(void *arg, const char *source, uint32_t worker, uint32_t workers,
	                 size_t segment, size_t segments);
	void *progress_arg;
	/* Replication (docs/ARCHITECTURE.md "Acknowledged means replicated").  min_insync: an
	 * ingest batch is acknowledged, and a time published to subscribers, only once it is
	 * durable on this process and on every standby in the in-sync set, and only while that
	 * set (this process included) has at least min_insync members; with fewer, ingest is
	 * refused (SL_ENOTINSYNC) and frontiers stop.  Default 1; 1 without `coordinated` is the
	 * unreplicated mode: publish and acknowledge at the local upper. */
	uint32_t min_insync;
	/* Set by a process whose leadership an outside coordinator (etcd) decides: acting
	 * (acknowledging, publishing) is allowed only until the deadline given to
	 * sl_storage_act_until, and a standby leaving the in-sync set is left out of the high
	 * watermark only once sl_storage_isr_recorded says the coordinator recorded the smaller
	 * set.  Default 0. */
	int coordinated;
	/* A standby in sync that has not caught up with this process's upper for this long leaves
	 * the in-sync set; default 10000 ms. */
	uint32_t insync_lag_ms;
} sl_storage_config;

/* Fills the caller's cfg with the defaults above.  A field left 0 (or NULL) in the config given
 * to sl_storage_open takes its default too. */
SL_API void sl_storage_config_init(sl_storage_config *cfg);

/* Creates a runtime and binds its listening socket (so a port-0 listener has its port now).
 * cfg (NULL: all defaults) is read during the call only.  With a data directory, creates it,
 * reads DATA/term and DATA/fenced and counts DATA/epoch up (also when the open fails later);
 * with SL_FSYNC_INTERVAL starts the sync thread.  The network thread is started only by
 * sl_storage_start.  On success *out is owned by the caller: free it with sl_storage_close.
 * Errors: SL_EARG (a bad listen address, max_frame out of range, max_row over SL_ROW_MAX,
 * max_output set below 4 * out_high_water + max_frame, tls_cert without tls_key or the reverse,
 * tls_client_ca without tls_cert, an empty auth_token), SL_ETLS (a PEM file that cannot be
 * loaded), SL_EIO (DATA/epoch, DATA/term or DATA/fenced unreadable), SL_ENOMEM, -errno
 * (creating the data directory, writing DATA/epoch, socket/bind/listen: e.g. -EADDRINUSE).
 * Most failures leave a line in sl_storage_last_error.  Thread-safe (each call makes its own
 * runtime; two runtimes must not share a data directory). */
SL_API int sl_storage_open(const sl_storage_config *cfg, sl_storage **out);

/* Makes this runtime process `process` of a storage cluster of n processes at addrs[0..n-1]
 * (each "HOST:PORT", copied): it hosts, of every source, the workers w with w mod n == process,
 * and answers requests for the others with SL_EWRONGOWNER naming their process and address.
 * `fingerprint` identifies the cluster's configuration (its address list and source specs):
 * every process of one cluster must be given the same, and clients refuse to mix processes
 * that differ.  Without this call the runtime is a cluster of one.  Call after sl_storage_open
 * and before registering any source and before sl_storage_start (a control call); a second
 * call replaces the first's list.  Errors: SL_EARG (st or addrs NULL, an addrs[i] NULL, n == 0, process >= n, a source
 * already registered), SL_ENOMEM. */
SL_API int sl_storage_set_cluster(sl_storage *st, const char *const *addrs, uint32_t n,
                                  uint32_t process, uint64_t fingerprint);

/* 1 if this process hosts the worker (always, outside a cluster), 0 if another process does or
 * worker is out of range.  Sources append to and advance only the workers their process hosts.
 * Thread-safe. */
SL_API int sl_source_hosts(const sl_source *src, uint32_t worker);

/* A one-line description of why the last sl_storage_open, sl_source_register,
 * sl_storage_follow or sl_storage_metrics_listen on this thread failed (e.g. "log
 * sources/c/0/ok is corrupt: block at 0000000000000000.seg offset 4096 fails its checksum"), or
 * "".  sl_storage_open (once its limits are checked) and sl_source_register clear it first; a
 * failure that has no line of its own (most SL_EARG and SL_ENOMEM) leaves the previous one.
 * The string is the calling thread's own (thread-local): never NULL, not to be freed, its text
 * replaced by the next of those calls on this thread. */
SL_API const char *sl_storage_last_error(void);

/* How many times this data directory has been opened (1 on the first start); 0 without a
 * data directory.  Sent in Hello, so clients can tell a restarted process from the same one.
 * Fixed at open; thread-safe. */
SL_API uint64_t sl_storage_epoch(const sl_storage *st);

/* The data directory (the runtime's copy of cfg.data_dir, valid until sl_storage_close), or
 * NULL when logs are kept in memory.  A source that must remember where it stood in its input
 * (an offset, a position) keeps its state there.  Thread-safe. */
SL_API const char *sl_storage_data_dir(const sl_storage *st);

/* The TCP port the runtime listens on (the one picked, for port 0).  Fixed at open;
 * thread-safe. */
SL_API int sl_storage_port(const sl_storage *st);

/* Serves the runtime's metrics in the Prometheus text exposition format at GET /metrics on
 * `hostport` ("HOST:PORT", read during the call; port 0 picks a free port, written to *port_out
 * if not NULL), from an HTTP server thread of its own (libmicrohttpd).  Each scrape is a report
 * the network thread builds on request (see docs/ARCHITECTURE.md, "Operating"); until
 * sl_storage_start, or when the network thread does not answer within 2 s, it answers 503.
 * Call once, after sl_storage_open (a control call); sl_storage_close stops it.  Errors: SL_EARG
 * (st or hostport NULL, a bad address, or called twice), SL_ENOMEM, -errno from
 * socket/bind/listen, SL_EIO (the HTTP server did not start); see sl_storage_last_error. */
SL_API int sl_storage_metrics_listen(sl_storage *st, const char *hostport, int *port_out);

/* Reloads the credentials without dropping a connection: re-reads the TLS certificate, key
 * (and client CA) files named at sl_storage_open, by the same names, and replaces the token
 * clients must present and this process's own connections send by auth_token (read during the
 * call).  Connections already open keep their TLS session; new handshakes and Hellos use the
 * new ones.  All or nothing: on an error nothing changed and the old credentials stay.
 * Errors: SL_ETLS (a file that cannot be read or does not match), SL_EARG (auth_token NULL when
 * the runtime was opened with one, or given when it was not: authentication is turned on or
 * off only by a restart; or empty), SL_ENOMEM; the reason in sl_storage_last_error.
 * Thread-safe, at any time between sl_storage_open and sl_storage_close.  Each reload keeps
 * the replaced token's few bytes until sl_storage_close, since a standby's reconnect may
 * still be reading it. */
SL_API int sl_storage_reload_security(sl_storage *st, const char *auth_token);

/* Starts the network thread (and, in a cluster, the thread that greets the other processes).
 * Call once (a control call).  Errors: SL_EARG (already started), -errno (the thread could not
 * be created, e.g. -EAGAIN). */
SL_API int sl_storage_start(sl_storage *st);

/* Stops and joins every thread of the runtime (the metrics server, the follower and fencer of
 * a standby, the greeting thread, the network thread, the sync thread: this may take a few
 * seconds while one finishes a connection attempt), closes every connection and the listening
 * socket, and frees every source and log and st itself.  Source handles become invalid; the
 * caller must have stopped every thread that calls into the runtime first (see "Which thread
 * may call what").  Not from the warn callback.  Accepts NULL. */
SL_API void sl_storage_close(sl_storage *st);

/* Makes this runtime a standby of the storage process at `primary` ("HOST:PORT", copied): a
 * thread follows it over the sluice protocol (as a compute client, reconnecting by itself),
 * registers every source of the primary here in the same order (so ids agree; register no
 * source of your own), and writes each worker's complete times into the local logs, which
 * serve read subscriptions as usual.  Ingest Appends are refused (SL_EREJECTED) until a client
 * sends Promote: then the follower stops, the sources of kind "ingest" take Appends, and the
 * term is the primary's + 1.  Replication is asynchronous: a promoted standby has what it had
 * followed.  For a process of a cluster, first call sl_storage_set_cluster with the primary's
 * list and process (the fingerprint is then taken from the primary, and kept in
 * DATA/fingerprint): the standby follows and serves only that process's workers.  Call once,
 * after sl_storage_open, before or after sl_storage_start (a control call).  Blocks for one
 * first look at the primary (a connection with a 2 s timeout); a primary that cannot be
 * reached now is no error: the follower keeps trying.  That look uses sl_client_open, so it
 * also replaces the calling thread's sl_client_last_error.  Errors: SL_EARG (st or primary NULL,
 * or already a standby), SL_ETLS or SL_EAUTH (the primary is up and refuses this process's TLS
 * or token), SL_ECLUSTER (the primary is not the process this runtime was configured for: a
 * process of a cluster for a runtime without one, or another list or process), SL_ENOMEM,
 * -errno (the thread could not be created); see sl_storage_last_error. */
SL_API int sl_storage_follow(sl_storage *st, const char *primary);
/* The same, for a process rejoining under a new leader: before following, each worker named in
 * `limits` ("ID:W=T,ID:W=T,...": source id, worker, time; copied) has its logs cut back to
 * below T (what the new leader had when its term began: nothing of this process's beyond it was
 * ever published), so the local log is a prefix of the leader's again.  NULL: none.  The cuts
 * are said in the event log.  Errors as sl_storage_follow, and SL_EARG for malformed limits. */
SL_API int sl_storage_follow_truncating(sl_storage *st, const char *primary, const char *limits);
/* The i-th registered source (0-based, in registration order), or NULL past the last.
 * Thread-safe. */
SL_API sl_source *sl_storage_source_at(sl_storage *st, size_t i);

/* 1 while this runtime follows a primary and was not promoted, else 0.  Thread-safe. */
SL_API int sl_storage_is_standby(const sl_storage *st);

/* Milliseconds since the network thread last ran its periodic tick (every heartbeat_ms / 4
 * while it is healthy), or UINT64_MAX before sl_storage_start: a liveness signal for a
 * watchdog (sluiced feeds systemd's only while it is small).  Lock-free; thread-safe. */
SL_API uint64_t sl_storage_loop_idle_ms(const sl_storage *st);

/* The fencing term: persisted in DATA/term, 1 on a fresh data directory; a standby takes its
 * primary's when it learns it, and promotion adds 1.  Sent in the Cluster frame: clients given
 * several addresses of one process use the one with the highest term.  Thread-safe. */
SL_API uint64_t sl_storage_term(const sl_storage *st);

/* Replication with an outside coordinator (cfg.coordinated): any thread.
 * sl_storage_act_until: this process may acknowledge and publish until `monotonic_ms`
 * (CLOCK_MONOTONIC milliseconds), e.g. its etcd lease's safe deadline; 0 stops it at once.
 * sl_storage_isr: writes the in-sync set this process computes as a leader ("ADDR,ADDR,...",
 * its own address first) to buf, returning its version (bumped at every change; 0 before the
 * first); SL_EARG if it does not fit.  sl_storage_isr_recorded: the coordinator has recorded
 * `members` (a list as sl_storage_isr gives): a standby missing from it no longer holds back
 * the high watermark.  At start, and on becoming the leader, the recorded set is what the
 * coordinator last had (standbys listed in it hold the watermark back until a smaller set is
 * recorded).  sl_storage_set_leader: this process leads at `term` (the coordinator's): the
 * follower stops (as with Promote), ingest sources take Appends, the term is persisted. */
SL_API void sl_storage_act_until(sl_storage *st, uint64_t monotonic_ms);
SL_API int sl_storage_isr(sl_storage *st, char *buf, size_t len, uint64_t *version);
SL_API int sl_storage_isr_recorded(sl_storage *st, const char *members);
SL_API int sl_storage_set_leader(sl_storage *st, uint64_t term);
/* Whether a client asked this standby (Promote, `sluice promote`) to take the leadership over
 * gracefully; the coordinator passes the request on (the leader hands over once this standby
 * is caught up).  The client gets Promoted(term) once this process leads, within 9 s, else an
 * error.  Any thread. */
SL_API int sl_storage_switchover_requested(sl_storage *st);
/* Whether standby `member` (its address) is in sync and has acknowledged this process's upper
 * on every hosted worker, as of the network thread's last tick: a leader that stopped producing
 * may hand over to it without loss.  Any thread. */
SL_API int sl_storage_caught_up(sl_storage *st, const char *member);

/* Flags for sl_source_register. */
#define SL_SOURCE_INGEST 0x01 /* clients may Append batches (the `ingest` kind) */

/* Registers a source named `name` (unique, non-empty) of the given kind (free text shown by
 * ListSources) with `workers` workers (1 to 2^20); name and kind are copied.  With a data
 * directory the name is a directory's, so it may hold only letters, digits, '_', '-' and '.',
 * and not begin with '.' (without one this is not checked).  Without a data directory each
 * worker starts with upper 0 and empty collections.  With one, the source's logs are opened
 * and recovered (this call reads them all): each worker starts at its durable upper with
 * everything before it, and any update at a time not yet complete when the process stopped is
 * dropped (the source produces those times again).  Thread-safe.  *out belongs to the runtime
 * (there is no function to free it) and stays valid until sl_storage_close.  Errors:
 * SL_EDUPLICATE (the name is taken), SL_EARG (st, name or kind NULL, an empty or, with a data
 * directory, disallowed name, workers 0 or over 2^20), SL_EIO (a corrupt log, or a data
 * directory made for another kind or worker count), SL_ENOMEM, -errno (creating its
 * directories and files; -EWOULDBLOCK: another runtime has its logs open); see
 * sl_storage_last_error. */
SL_API int sl_source_register(sl_storage *st, const char *name, const char *kind, uint32_t workers,
                              unsigned flags, sl_source **out);

/* The registered source named `name`, when its kind and worker count are `kind` and
 * `workers`: how a producer takes over a source a standby followed (under etcd, the new leader's
 * counter continues the one it replicated).  0 with *out (the runtime's), SL_ENOSOURCE (no such
 * name), SL_EARG (another kind or worker count; message in sl_storage_last_error).
 * Thread-safe. */
SL_API int sl_source_find(sl_storage *st, const char *name, const char *kind, uint32_t workers,
                          sl_source **out);

/* The source's id (1, 2, ... in registration order: clients name it by this) and its number of
 * workers.  Fixed at registration; thread-safe. */
SL_API uint64_t sl_source_id(const sl_source *src);
SL_API uint32_t sl_source_workers(const sl_source *src);

/* Appends n updates (ups[0..n-1], read during the call: the rows are copied) to one collection
 * of one worker.  Subscribers receive a time's updates once sl_source_advance has moved the
 * upper past it.  The whole array is checked first, and nothing is appended when a check
 * fails: SL_EARG (src NULL, worker out of range, coll not SL_OK or SL_ERR), SL_EWRONGOWNER
 * (another process of the cluster hosts the worker), SL_ECLOSED (the worker is closed; only
 * checked when n > 0), SL_ETIME (a time below the worker's upper, or SL_TIME_CLOSED),
 * SL_ETOOBIG (a row over SL_ROW_MAX bytes).  Writing can then fail with SL_ENOMEM or, with a
 * data directory, the -errno of creating a log segment (-ENOSPC or -EDQUOT: the disk is full;
 * -EIO): the call is all or nothing, so then nothing of ups is in the log and the same call
 * can be retried once space returns (what earlier calls appended stays).  A disk error marks
 * the worker "append blocked" (one warn line; sluice_worker_append_blocked) until an append or
 * advance on it succeeds again.  Thread-safe.  Never waits for the network, but waits for the worker's lock while another
 * append or advance on that worker, or an ingest commit on its source, holds it. */
SL_API int sl_source_append(sl_source *src, uint32_t worker, sl_collection coll,
                            const sl_update *ups, size_t n);

/* One worker's part of an sl_source_commit: n updates (read during the call) for one
 * collection of one worker. */
typedef struct sl_append_part {
	uint32_t worker;
	sl_collection coll;
	const sl_update *ups;
	size_t n;
} sl_append_part;

/* Appends every part and advances every worker this process hosts to `upper` (those already
 * there or beyond are left alone), as one transaction: either all of it becomes visible and durable
 * (per the fsync policy) at once, or, on any failure, nothing of it is in the logs and no upper
 * moved, so the same call can simply be retried (a source resuming after a full disk repeats
 * exactly what it tried).  Checks, before anything is written: SL_EARG (src NULL, a part's
 * worker out of range, a bad coll, ups NULL with n > 0), SL_EWRONGOWNER (a part for a worker
 * another process hosts), SL_ECLOSED, SL_ETIME (an update's time below its worker's upper, or
 * SL_TIME_CLOSED), SL_ETOOBIG; then SL_ENOMEM or a
 * disk error (-ENOSPC, -EDQUOT, -EIO; the worker is marked append blocked as for
 * sl_source_append).  Thread-safe; holds the locks of all the source's workers meanwhile. */
SL_API int sl_source_commit(sl_source *src, const sl_append_part *parts, size_t nparts,
                            uint64_t upper);

/* Advances the worker's upper to `upper` (> current; an equal value is a no-op returning 0, a
 * lower one SL_ETIME).  SL_TIME_CLOSED closes the worker.  With a data directory the upper is
 * written to the log first (and with SL_FSYNC_ALWAYS synced, under the worker's lock) and only
 * then published, so no subscriber ever sees a frontier that a crash could take back.  Errors:
 * SL_EARG (src NULL, worker out of range), SL_EWRONGOWNER, SL_ETIME, and when writing or
 * syncing the upper fails, SL_ENOMEM or -errno (e.g. -ENOSPC, -EIO): the upper then stays
 * where it was.  Thread-safe (as sl_source_append). */
SL_API int sl_source_advance(sl_source *src, uint32_t worker, uint64_t upper);

/* Same as sl_source_advance(src, worker, SL_TIME_CLOSED). */
SL_API int sl_source_close_worker(sl_source *src, uint32_t worker);

/* The worker's current upper (SL_TIME_CLOSED once closed); 0 for a worker out of range or
 * hosted by another process.  Thread-safe; takes no lock. */
SL_API uint64_t sl_source_upper(const sl_source *src, uint32_t worker);

/* Appends one atomic batch (ups[0..n-1], read during the call) to an ingest source the way a
 * client Append does: every update gets the same time T = the largest upper over the workers
 * this process hosts, rows are routed to worker sl_ingest_route(row, W), and then every hosted
 * worker's upper advances to T + 1 (also for n == 0).  Updates' own time fields are ignored.
 * All or nothing: on failure no update becomes visible and no upper moves.  On success
 * *time_out (not NULL) receives T.  Neither the source's flags nor a standby's state are
 * checked here (clients' Appends are refused for those; this call is not).  Errors: SL_ETOOBIG
 * (a row over SL_ROW_MAX bytes), SL_ECLOSED (a hosted worker is closed), SL_ETIME (T + 1 would be
 * SL_TIME_CLOSED), SL_EWRONGOWNER (in a cluster, a row routed to a worker another process
 * hosts), SL_ENOMEM, -errno of the durable log (e.g. -ENOSPC).  Thread-safe: it holds the lock
 * of every worker of the source for the whole commit (with SL_FSYNC_ALWAYS, syncs included). */
SL_API int sl_source_ingest(sl_source *src, const sl_update *ups, size_t n, uint64_t *time_out);

#ifdef __cplusplus
}
#endif
#endif
