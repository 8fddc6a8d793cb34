/*
 * storage_int.h - the storage runtime's internal structures, shared by the files of
 * src/storage.  Threads: everything marked "loop" is touched by the network thread only;
 * sources' appending threads touch a worker under its `mu`, and uppers/log ends atomically.
 */
#ifndef SLUICE_STORAGE_INT_H
#define SLUICE_STORAGE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "log/log.h"
#include "net/loop.h"
#include "proto/proto.h"
#include "sluice/storage.h"
#include "storage/block_write.h" /* sli_log_write_updates, inline */
#include "storage/metrics.h"
#include "storage/replica_hooks.h" /* also declares error.c and durable.c functions */

struct sub;
struct conn;

/* One worker of one source: two logs and an upper. */
struct sworker {
	pthread_mutex_t mu;   /* serialises writers */
	sli_log *log[2];      /* SL_OK, SL_ERR */
	_Atomic uint64_t upper;
	atomic_int dirty;     /* queued on the storage's dirty list */
	struct sworker *dirty_next;
	struct sl_source *src;
	uint32_t index;
	struct sub *subs;     /* loop: subscribers, linked by sub->wnext/wprev */
	/* Compaction (compact.c), loop thread after registration: updates at times below `since`
	 * live consolidated in snap[coll], at time `since`. */
	uint64_t since;
	struct sli_snap *snap[2];
	_Atomic uint64_t marker_end[2]; /* position just past the last upper marker (writer) */
	atomic_int append_blocked;      /* the last append or advance failed on the disk */
	/* Replication (replicate.c), when st->gated: `visible` is the frontier ordinary
	 * subscribers are served up to (<= upper); `hw` (loop) the high watermark computed from
	 * the in-sync copies; `wm` the watermark a standby learnt from the process it follows. */
	_Atomic uint64_t visible;
	_Atomic uint64_t wm;
	uint64_t hw;
};

/* A consolidated snapshot of one collection at `since`: MESSAGES events at that one time, kept
 * in a memory log so it is served exactly like a log.  Shared by the worker and by the
 * subscriptions still reading it (loop thread only, so a plain count). */
struct sli_snap {
	int refs;
	uint64_t since;
	sli_log *log;
};

struct sl_source {
	sl_storage *st;
	uint64_t id;
	char *name;
	char *kind;
	uint32_t nworkers;
	unsigned flags;
	struct sworker *w;
};

/* A subscription: a cursor per collection into one worker's logs, plus credit. */
struct sub {
	struct conn *conn;
	struct sworker *w;
	uint32_t handle;
	uint64_t dataflow;
	uint64_t from;
	uint64_t credit;      /* event bytes storage may still send */
	uint64_t cursor[2];   /* next block position per collection */
	uint64_t sent_upper;  /* frontier the client has been told */
	struct sli_snap *snap[2]; /* while non-NULL: serving this snapshot before the log */
	uint64_t snap_cursor[2];
	int ready;            /* on the connection's ready ring */
	struct sub *rnext, *rprev; /* ready ring (doubly linked: O(1) removal) */
	struct sub *wnext, *wprev; /* worker's subscriber list */
	struct sub *hnext;    /* handle hash chain */
	struct sub *knext;    /* (dataflow, source, worker) hash chain */
	uint64_t sent_wm;     /* a standby's subscription: the watermark it was last sent */
};

struct subtable {
	struct sub **by_handle;
	struct sub **by_key;
	size_t nbuckets; /* power of two */
	size_t count;
};

/* A token bucket (limits.c), in thousandths of a request. */
struct sli_rate {
	uint64_t milli;
	uint64_t last_ms;
};

struct conn {
	sl_storage *st;
	int fd;
	uint8_t *in;
	size_t in_len, in_cap;
	sli_buf out;
	size_t out_off;    /* bytes of out already sent */
	int hello_done;
	int closing;       /* a fatal error was queued: flush and close */
	int dead;          /* closed: freed by the next sweep */
	int want_write;    /* registered for SLI_WRITE */
	int reading;       /* registered for SLI_READ */
	uint64_t last_rx_ms, last_tx_ms;
	uint64_t ping_nonce;
	struct subtable subs;
	struct sub *ready_head, *ready_tail;
	/* ingest staging: one batch at a time */
	uint64_t stage_batch;
	uint64_t stage_source;
	int staging;
	int stage_failed;  /* the batch already got an AppendError; drop until its last frame */
	uint32_t stage_count;
	sli_buf stage;
	uint64_t accepted_ms; /* the handshake timeout counts from here */
	uint64_t last_ping_ms;
	struct sli_rate sub_rate; /* Subscribe + Unsubscribe */
	int in_pending;    /* input left undecoded by backpressure: decode it once output drains */
	struct conn *next, *prev;
	/* TLS (conn_hello.c): ssl is NULL on a plaintext connection, which then costs nothing more */
	struct ssl_st *ssl;
	int tls_phase;     /* CONN_TLS_*: sniffing the first byte, handshaking, or done */
	/* Operating (metrics.c, log events): loop thread only. */
	uint64_t id;          /* 1, 2, ... in accept order: names the connection in logs and stats */
	char peer[64];        /* "HOST:PORT" of the client */
	char reason[192];     /* why it closes, once known (first reason wins) */
	uint64_t bytes_in, bytes_out, frames_in, frames_out;
	/* Replication (replicate.c): a standby's connection names its member (index + 1; 0 for
	 * every other connection); acknowledgements waiting for the high watermark, in order. */
	uint32_t replica;
	struct sli_pending_ack *acks;
	size_t acks_head, acks_len, acks_cap;
};

struct sl_storage {
	sl_storage_config cfg;
	char listen[128];
	char *data_dir;         /* owned copy of cfg.data_dir */
	uint32_t cluster_size;  /* processes in the cluster (1 outside one) */
	uint32_t process;       /* this process's index */
	char **cluster;         /* their addresses, owned; NULL outside a cluster */
	_Atomic uint64_t fingerprint; /* a standby of a cluster process learns it from its primary */
	int listen_fd;
	int port;
	sli_loop *loop;
	pthread_t thread;
	int started;
	uint64_t session;
	uint64_t epoch;

	pthread_mutex_t src_mu; /* guards the source table */
	struct sl_source **sources;
	size_t nsources, cap_sources;

	pthread_mutex_t dirty_mu;
	struct sworker *dirty;  /* workers with news since the loop last looked */

	pthread_mutex_t sync_mu; /* SL_FSYNC_INTERVAL's background sync */
	pthread_cond_t sync_cv;
	pthread_t sync_tid;
	int sync_running, sync_stop;

	uint64_t compact_after_ms; /* no compaction before (a grace period for reconnects) */

	struct conn *conns;     /* loop */
	size_t nconns;
	uint64_t refused;       /* loop: connections refused over max_connections */
	int accept_paused;      /* loop: out of file descriptors; accepting resumes at the next tick */

	/* Fencing and standby (standby.c, fence.c).  term: the fencing epoch, persisted in DATA/term. */
	_Atomic uint64_t term;
	_Atomic uint64_t last_tick_ms; /* the network loop's last tick (sli_now_ms), 0 before */
	int fenced;             /* loop: superseded by fenced_by (a promoted standby): serve nobody */
	char fenced_by[256];
	pthread_t fence_tid;    /* a promoted standby fencing the primary it replaced (fence.c) */
	int fence_started;
	atomic_int fence_stop;
	pthread_t peers_tid;    /* the start-up greeting of the other cluster processes (peers.c) */
	int peers_started;
	atomic_int peers_stop;
	char *standby_of;       /* the primary followed while a standby (not promoted), else NULL */
	atomic_int promoted;    /* a standby that was promoted: it takes ingest now */
	const struct sli_follower_ops *follower_ops; /* the follower (src/replica), or NULL */
	void *follower;
	struct sli_security *sec; /* TLS contexts and tokens (security.h), never NULL once open */
	struct sli_metrics metrics; /* metrics.h: counters and report requests */
	/* Replication (replicate.c): gated when min_insync > 1 or coordinated (set at open). */
	int gated;
	struct sli_repl *repl;
	_Atomic uint64_t act_until; /* CLOCK_MONOTONIC ms; UINT64_MAX without a coordinator */
	/* Truncations (truncate.c) run on the network thread, one at a time: another thread posts
	 * its request here, wakes the loop and waits for `done`. */
	pthread_mutex_t trunc_mu;
	pthread_cond_t trunc_cv;
	struct sli_trunc_req *trunc_req; /* trunc_mu */
	atomic_int trunc_want;           /* a request is posted: the loop checks without the lock */
	/* Switchover (switchover.c, loop): the connections waiting for Promoted, by id. */
#define SLI_SWITCH_WAITERS 8
	uint64_t switch_conn[SLI_SWITCH_WAITERS];
	uint64_t switch_deadline;
	atomic_int switch_wanted; /* polled by the coordinator's thread */
};

/* The frontier a worker's ordinary subscribers are served up to: its upper, or when
 * replication gates it, what the in-sync copies hold (replicate.c). */
static inline uint64_t sli_worker_published(const sl_storage *st, const struct sworker *w)
{
	return st->gated ? atomic_load_explicit(&w->visible, memory_order_acquire)
	                 : atomic_load_explicit(&w->upper, memory_order_acquire);
}

/* Whether this process hosts worker w of every source (w mod P == process). */
static inline int sli_hosts(const sl_storage *st, uint32_t w)
{
	return st->cluster_size <= 1 || w % st->cluster_size == st->process;
}

/* source.c */
struct sl_source *sli_storage_find_source(sl_storage *st, uint64_t id);
void sli_worker_touch(struct sworker *w);
int sli_ingest_commit(struct sl_source *src, const uint8_t *updates, size_t nbytes, uint32_t count,
                      uint64_t *time_out);
void sli_sources_free(sl_storage *st);
int sli_encode_sources(sl_storage *st, sli_buf *b);

/* cluster.c: the Cluster frame answering ClusterMap.  0 or SL_ENOMEM. */
int sli_encode_cluster(sl_storage *st, sli_buf *b);

/* durable.c */
int sli_storage_open_data_dir(sl_storage *st);
int sli_source_open_durable(sl_storage *st, struct sl_source *s);
/* After an append, advance or commit on w returned rc (under w's lock): a disk error marks the
 * worker blocked, a success clears it; each change is said once through the warn callback. */
void sli_worker_note_append(struct sworker *w, int rc);
int sli_worker_mark_upper(sl_storage *st, struct sworker *w, uint64_t upper);
int sli_worker_sync(sl_storage *st, struct sworker *w);
/* mark, then sync: the upper may be published once this returns 0.  Caller holds w->mu. */
int sli_worker_persist_upper(sl_storage *st, struct sworker *w, uint64_t upper);
/* truncate.c's record (see durable.c): writes W/truncate (where each log is cut, the upper
 * left) atomically and synced, or removes it.  0 or -errno. */
int sli_worker_save_truncation(sl_storage *st, struct sworker *w, const uint64_t pos[2],
                               uint64_t upper);
int sli_worker_clear_truncation(sl_storage *st, struct sworker *w);
int sli_sync_start(sl_storage *st);
void sli_sync_stop(sl_storage *st);

/* standby.c (what src/replica may call is in replica_hooks.h) */
/* Promote (network thread): stops the follower (does not join it), opens the ingest sources to
 * Appends and bumps and persists the term.  0 with *term_out, or an error with err filled. */
int sli_storage_promote(sl_storage *st, uint64_t *term_out, char *err, size_t errlen);
/* sl_storage_close: stops and joins the registered follower, if any. */
void sli_storage_stop_follower(sl_storage *st);

/* replicate.c: the leader's high watermark and a standby's watermark (see the file). */
int sli_repl_open(sl_storage *st);
void sli_repl_free(sl_storage *st);
void sli_repl_on_replica(struct conn *c, sl_bytes member);
void sli_repl_on_ack(struct conn *c, const sli_replica_ack *a);
void sli_repl_conn_closed(struct conn *c);
/* Recomputes w's high watermark and visible frontier (loop) and sends the acknowledgements
 * that waited for them: 1 when the visible frontier moved (its subscribers have news). */
int sli_repl_update_worker(sl_storage *st, struct sworker *w);
void sli_repl_tick(sl_storage *st);
/* Whether a new ingest batch may be taken now: 0, or SL_ENOTINSYNC / SL_ELEASE with msg. */
int sli_repl_may_ingest(sl_storage *st, char *msg, size_t len);
/* Sends AppendOk(batch, time) once every hosted worker of src publishes time (at once when
 * not gated).  0 or SL_ENOMEM. */
int sli_repl_ack(struct conn *c, struct sl_source *src, uint64_t batch, uint64_t time);
/* serve.c, for a standby's subscription: sends Watermark when the worker's moved. */
void sli_repl_send_watermark(struct conn *c, struct sub *s);
/* truncate.c (sli_source_truncate is in replica_hooks.h) */
/* On the loop's wake: runs a truncation another thread asked for, if any. */
void sli_truncate_on_wake(sl_storage *st);

/* switchover.c: Promote under a coordinator (a request passed on), and answering it. */
void sli_switchover_request(struct conn *c);
void sli_switchover_tick(sl_storage *st);

/* compact.c */
void sli_snap_unref(struct sli_snap *s);
struct sli_snap *sli_snap_ref(struct sli_snap *s);
int sli_snapshot_load(sl_storage *st, struct sl_source *src, struct sworker *w);
void sli_compact_tick(sl_storage *st);
void sli_worker_compaction_free(struct sworker *w);

/* fence.c */
int sli_fencer_start(sl_storage *st);
void sli_fencer_stop(sl_storage *st);
int sli_storage_fence(sl_storage *st, uint64_t term, const char *by);
int sli_storage_save_fenced(sl_storage *st, uint64_t term, const char *by);

/* peers.c */
int sli_peers_start(sl_storage *st);
void sli_peers_stop(sl_storage *st);

/* subs.c */
int sli_subtable_init(struct subtable *t);
void sli_subtable_fini(struct subtable *t);
struct sub *sli_sub_by_handle(struct subtable *t, uint32_t handle);
struct sub *sli_sub_by_key(struct subtable *t, uint64_t dataflow, uint64_t source, uint32_t worker);
int sli_subtable_insert(struct subtable *t, struct sub *s);
void sli_subtable_remove(struct subtable *t, struct sub *s);

/* limits.c */
/* Fills the limits left 0 in cfg from def and checks them: 0 or SL_EARG. */
int sli_limits_check(sl_storage_config *cfg, const sl_storage_config *def);
void sli_rate_init(struct sli_rate *r, uint32_t burst, uint64_t now_ms);
/* Takes one request from the bucket: 0, or -1 when it is empty. */
int sli_rate_take(struct sli_rate *r, uint32_t rate, uint32_t burst, uint64_t now_ms);
/* Sends Error(SL_ELIMIT, fatal) "too many connections" on a just-accepted fd and closes it. */
void sli_limits_refuse(sl_storage *st, int fd);

/* conn.c (the files of a connection reach each other through conn.h) */
void sli_conn_accept(sli_loop *l, int fd, uint32_t events, void *arg);
void sli_conn_free(struct conn *c);
void sli_conn_tick(sl_storage *st);
void sli_conn_flush_all(sl_storage *st);
/* conn_read.c: reads what OpenSSL holds for a TLS connection that is reading. */
void sli_conn_read_pending(sl_storage *st);
/* conn_out.c: writes what the socket takes of c's output.  0, or -1 when c is dead. */
int sli_conn_flush(struct conn *c);
void sli_conn_sweep(sl_storage *st);

/* serve.c */
void sli_serve_mark_ready(struct sub *s);
void sli_serve_conn(struct conn *c);
void sli_serve_dirty(sl_storage *st);
void sli_sub_detach(struct sub *s);

#endif
