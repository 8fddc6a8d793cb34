/*
 * runtime.h - the compute runtime's shared state: a subscription, a queue item, a command, a
 * connection and the client, and the interface between caller threads and the runtime thread.
 *
 * Every src/compute file includes it (and src/storage/follow.c, for sli_client_map).  The
 * functions the runtime thread's own files call in each other are in compute/conn.h.  Each
 * piece of state below names the file that owns it (the one that changes it); the others read
 * it or go through that file's functions.
 *
 * The caller threads' files call down a line that never calls back: queue.c (a worker's queue)
 * -> registry.c (Subscribe, SL_EDUPLICATE) -> mailbox.c (commands, waiting for answers) ->
 * last_error.c.  The runtime thread's files call queue.c (pushing items) and mailbox.c, never
 * the other way round.
 *
 * Three threads touch a subscription (struct sli_csub): the worker that made it (through its
 * queue), the runtime thread (which owns the connection), and whoever takes the client mutex to
 * check for duplicates.  Each field below says which one owns it.  Lifetime is a reference count:
 * one reference for the worker (held while the subscription is in its queue's id map), one for
 * the runtime (from the Subscribe command until the runtime "releases" it: Unsubscribed,
 * SubscribeError or the connection lost for good), one per command in flight that names it.  The
 * runtime's last act on a subscription is to push a RELEASE item into its queue; the queue drops
 * the runtime's reference when it takes (or discards) that item.  Everything the runtime pushed
 * before the RELEASE is therefore covered by the runtime's reference.
 *
 * A queue is reference-counted the same way: one for its worker (until sl_queue_close) and one
 * per subscription object still alive, so the runtime may keep pushing to a closed queue (the
 * items are dropped at once) until its last subscription is released.
 *
 * Reconnects (cfg.retry_for_ms > 0): a lost connection does not end the subscriptions.  The
 * runtime parks every live one (no handle, on its `parked` list), retries with backoff, and on a
 * new connection subscribes each again from its resume point; each collection's sli_replay drops
 * what storage sends twice.  Every (re)subscription on the wire is a new generation (gen): queue
 * items carry it, so credit the worker grants for bytes of an older connection is not granted to
 * the new one.
 */
#ifndef SLUICE_COMPUTE_RUNTIME_H
#define SLUICE_COMPUTE_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "compute/frontier.h"
#include "compute/replay.h"
#include "net/loop.h"
#include "proto/proto.h"
#include "sluice/compute.h"

/* worker-side state of a subscription */
enum { SLI_SUB_PENDING, SLI_SUB_LIVE, SLI_SUB_ENDED };
/* runtime-side state of a subscription.  PARKED: waiting for a connection to be (re)subscribed
 * on; DONE: its frontier closed before the connection was lost, so it is not resubscribed (it
 * stays until its worker unsubscribes).  Both are on the runtime's parked list, without a
 * handle. */
enum { SLI_R_NEW, SLI_R_SUBSCRIBING, SLI_R_LIVE, SLI_R_UNSUBSCRIBING, SLI_R_RELEASED,
       SLI_R_PARKED, SLI_R_DONE };

typedef struct sli_csub {
	atomic_int refs;
	/* immutable after sl_subscribe */
	uint64_t id;
	uint64_t dataflow;
	uint64_t source;
	uint32_t worker;
	uint64_t from;
	uint32_t proc; /* the storage process hosting the worker: worker mod processes */
	sl_queue *q;
	/* worker thread */
	struct sli_csub *qnext; /* chain in the queue's id map */
	int wstate;
	sli_frontier wok, werr;
	uint64_t frontier;
	uint64_t ungranted; /* consumed bytes not yet granted back */
	uint64_t window;    /* credit storage may run ahead by: grows while the worker keeps up */
	uint32_t wgen;      /* the generation ungranted counts bytes of */
	/* client mutex */
	struct sli_csub *tnext; /* chain in the client's triple registry */
	int registered;
	/* runtime thread */
	int rstate;
	uint32_t handle;
	uint32_t gen;   /* bumped by every Subscribe sent for it */
	int acked;      /* a SubscribeOk arrived once: the worker has its SUBSCRIBED */
	struct sli_csub *pnext, *pprev; /* the parked list */
	sli_replay rp[2]; /* per collection (SL_OK, SL_ERR): what was delivered, the resume point */
} sli_csub;

enum { SLI_QI_DATA = 1, SLI_QI_SUBSCRIBED, SLI_QI_SUBERR, SLI_QI_DISCONNECTED, SLI_QI_RELEASE,
       SLI_QI_RECONNECTED, SLI_QI_RESNAPSHOT, SLI_QI_WATERMARK };

/* One queue item: a whole Data frame's events (one malloc per frame), or a control event. */
typedef struct sli_qitem {
	struct sli_qitem *next;
	int kind;
	sli_csub *sub; /* NULL for DISCONNECTED, RECONNECTED */
	uint8_t collection;
	uint32_t gen;  /* DATA: the subscription's generation that received it */
	uint64_t since, upper; /* RECONNECTED: the server's session, epoch */
	int code;
	const char *message; /* points into data[] */
	size_t len;
	size_t cap;  /* bytes allocated for the item: QITEM_CLASS ones are recycled (queue.c) */
	uint8_t data[]; /* DATA: the events; SUBERR/DISCONNECTED: the message, NUL-terminated */
} sli_qitem;

enum { SLI_CMD_SUB = 1, SLI_CMD_UNSUB, SLI_CMD_CREDIT, SLI_CMD_LIST, SLI_CMD_APPEND,
       SLI_CMD_REPLICA, SLI_CMD_REPLICA_ACK };

typedef struct sli_cmd {
	struct sli_cmd *next;
	int kind;
	sli_csub *sub;  /* SUB, UNSUB, CREDIT: one reference owned by the command */
	uint64_t bytes; /* CREDIT; REPLICA_ACK: the upper */
	uint32_t gen;   /* CREDIT: the generation the bytes were received on; REPLICA_ACK: worker */
	uint64_t seq;   /* LIST: request number; APPEND: batch id; REPLICA_ACK: source */
	uint32_t proc;  /* APPEND, LIST: the process it goes to */
	sli_buf frames; /* APPEND: the encoded frames, built by the caller's thread */
	sl_producer *producer; /* APPEND: the producer whose batch part it is (one reference owned
	                          by the command, then by its pending answer), NULL for
	                          sl_client_append */
} sli_cmd;

/* An Append part sent on a connection and not yet answered.  Storage answers a connection's
 * batches in the order they were sent, so each connection keeps these in a FIFO. */
typedef struct sli_pending_append {
	uint64_t batch;
	sl_producer *producer; /* one reference, or NULL (sl_client_append) */
} sli_pending_append;

/* One address, "HOST:PORT". */
#define SLI_ADDR_MAX 128
/* One process's entry in a cluster map: its addresses separated by '/', primary first. */
#define SLI_MAP_ENTRY_MAX 1024

/* One connection: to one storage process of the cluster.  Everything per connection (socket,
 * buffers, the handle table, requests in flight, heartbeats, reconnecting) lives here; the
 * runtime thread owns all of it.  A subscription is on the connection of its worker's owner
 * (worker mod processes), for its whole life.  Within the runtime thread, the comment on each
 * group names the file that changes it. */
typedef struct sli_conn {
	sl_client *c;
	/* connect.c (set up), failover.c (the address chosen for the next attempt) */
	uint32_t index;       /* the process it talks to */
	char addr[SLI_ADDR_MAX]; /* where it connects (again): one of alts */
	char (*alts)[SLI_ADDR_MAX]; /* the process's addresses: its primary and standbys */
	uint32_t nalts;
	/* failover.c (and cluster.c at open) */
	_Atomic uint64_t term; /* the highest fencing term seen from this process: a lower one is stale */
	/* the socket and its buffers: connect.c at open, failover.c and runtime.c after; reading is
	 * input.c's, writing wire.c's */
	int fd;
	struct ssl_st *ssl;   /* TLS on fd, or NULL */
	uint8_t *rbuf;
	size_t rlen, rcap;
	sli_buf out;
	int want_write;
	int connected;
	/* subscription.c: the handle table */
	sli_csub **slots; /* handle -> subscription holding it on the wire */
	uint32_t nslots;
	uint32_t *freeh; /* free handles (a stack) */
	uint32_t nfree;
	/* sources.c */
	sli_cmd *list_head, *list_tail; /* ListSources sent, answers pending (FIFO) */
	/* runtime.c: heartbeats */
	uint64_t last_rx, last_ping, ping_nonce;
	/* failover.c: the connection's phase and its reconnect attempts (runtime.c starts each) */
	int phase;            /* SLI_PH_* */
	int timerfd;          /* the next connection attempt */
	uint64_t outage_start, attempt_deadline;
	uint32_t attempts;    /* since the connection was lost: the backoff exponent */
	int lost_code;        /* why the connection was lost */
	char lost_msg[200];
	int last_attempt_rc;  /* why the last attempt to connect again failed */
	/* ingest.c */
	sli_pending_append *pend; /* ring of the parts sent and not answered, oldest first */
	/* wire.c: Append parts waiting to be written, oldest first, written from their own buffer
	 * (no copy into out): wq_off bytes of the first are written already */
	sli_cmd *wq_head, *wq_tail;
	size_t wq_off;
	size_t pend_cap, pend_head, pend_len;
	/* subscription.c */
	sli_csub *parked;     /* subscriptions without a handle (PARKED, DONE) */
} sli_conn;

/* Per process state of the request a caller waits for (c->mu). */
enum { SLI_PART_NONE, SLI_PART_PENDING, SLI_PART_OK, SLI_PART_FAILED };

struct sl_client {
	/* client.c, fixed at open */
	sl_client_config cfg;
	struct ssl_ctx_st *tls; /* cfg.tls_ca given: every connection speaks TLS */
	char *token;            /* cfg.auth_token, copied */
	char server[1024];
	/* cfg->server as a list: where to start (any process of the cluster, or a lone process's
	 * primary and standbys) */
	char (*addrs)[SLI_ADDR_MAX];
	uint32_t naddrs;
	uint32_t credit_batch; /* grant credit once this many bytes were consumed: window / 4 */
	uint64_t window_max;   /* how far a subscription's window may grow */
	sli_loop *loop;
	pthread_t thread;
	/* wire.c reports a lost connection through this: failover.c's sli_failover_lost */
	void (*on_lost)(sli_conn *k, int code, const char *msg);
	/* the cluster, fixed at open (cluster.c) */
	uint32_t nconns;       /* connections: P, or 1 with cfg.one_process */
	uint32_t home;         /* the connection to the process cfg->server is */
	uint64_t fingerprint;
	uint32_t map_count;    /* the cluster map: P */
	uint32_t map_process;  /* the process cfg->server is */
	char (*map)[SLI_MAP_ENTRY_MAX]; /* [map_count] each process's entry */
	sli_conn *conns;       /* [nconns] */

	/* mu protects everything up to the runtime-only section */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* request answers and death */
	/* mailbox.c */
	sli_cmd *cmd_head, *cmd_tail;
	/* failover.c (the end), client.c (closed) */
	int dead;
	int dead_code;
	char dead_msg[256];
	/* registry.c */
	uint64_t next_sub_id;
	sli_csub **tbuckets; /* triple registry: user-live subscriptions, for SL_EDUPLICATE */
	size_t tcap, tcount;
	/* sources.c.  ListSources: one request at a time (list_mu), asked of every process */
	pthread_mutex_t list_mu;
	uint64_t list_seq;      /* last request number handed out */
	uint64_t list_wait;     /* the request a caller waits for, 0 = none */
	int list_done, list_rc;
	uint32_t list_left;     /* processes that did not answer yet */
	char list_msg[256];
	sl_source_info **list_parts; /* [nconns] each process's answer */
	size_t *list_nparts;
	/* source id -> workers, learnt from ListSources (routes Append rows) */
	uint64_t *wsrc;
	uint32_t *wcount;
	size_t wn;
	/* ingest.c.  Append: one batch at a time (append_mu), split by owner process */
	pthread_mutex_t append_mu;
	uint64_t append_seq;
	uint64_t append_wait;
	int append_done;
	uint32_t append_left;
	int *append_state;      /* [nconns] SLI_PART_* */
	int *append_rcs;        /* [nconns] */
	uint64_t *append_times; /* [nconns] */
	char **append_msgs;     /* [nconns] */
	/* failover.c (cluster.c at open): the storage server of the current (or last) connection
	 * to the home process */
	uint64_t srv_session, srv_epoch;
	uint64_t reconnects;
	/* replica_link.c: a storage standby's own address, sent as Replica after every Hello */
	char replica_member[SLI_ADDR_MAX];

	/* runtime thread only: failover.c */
	int losing; /* inside die: pending Subscribes are parked, then ended with everything */
	uint64_t session;     /* ours, sent in every Hello */
	uint64_t rng;         /* jitter */
};

/* connection phases */
enum { SLI_PH_UP, SLI_PH_WAIT, SLI_PH_CONNECTING, SLI_PH_HELLO, SLI_PH_DEAD };

struct sl_queue {
	sl_client *c;
	atomic_int refs;
	int efd;
	pthread_mutex_t mu; /* protects head/tail/closed/signaled/waiting */
	pthread_cond_t cv;
	sli_qitem *head, *tail;
	int closed, signaled, waiting;
	/* worker thread */
	sli_qitem *cur; /* the item the last event came from; freed by the next call */
	sl_bytes rest;  /* DATA: events of cur not yet returned */
	sli_csub **buckets; /* id map of the subscriptions made through this queue */
	size_t bcap, bcount;
	/* runtime thread */
	int disc_mark; /* got its Disconnected (or Reconnected) already, while walking every sub */
};

/* queue.c */
void sli_queue_push(sl_queue *q, sli_qitem *it);
sli_qitem *sli_qitem_new(int kind, sli_csub *sub, size_t len);
void sli_qitem_discard(sli_qitem *it);
void sli_csub_unref(sli_csub *s);

/* producer.c: the runtime's one call into a producer */
/* Process proc answered part batch of p (rc 0: committed at time; else rc and msg).  Drops the
 * reference the part held (p may be freed). */
void sli_producer_answer(sl_producer *p, uint32_t proc, uint64_t batch, int rc, uint64_t time,
                         sl_bytes msg);

/* last_error.c */
/* Sets the calling thread's sl_client_last_error message. */
void sli_set_last_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mailbox.c: the command list (c->cmd_head) and waiting for answers on c->cv */
/* Frees a command and what it owns. */
void sli_cmd_free(sli_cmd *cmd);
/* Appends a command and wakes the runtime.  Takes cmd (also when the client is closing). */
void sli_client_post(sl_client *c, sli_cmd *cmd);
/* Appends a command, with c->mu held; the caller wakes the runtime (sli_loop_wake). */
void sli_cmds_append_locked(sl_client *c, sli_cmd *cmd);
/* Takes every command posted so far, oldest first (the caller runs or frees them). */
sli_cmd *sli_take_cmds(sl_client *c);
/* The same with c->mu held. */
sli_cmd *sli_take_cmds_locked(sl_client *c);
/* With c->mu held: waits until *done, the client dies, or timeout_ms (< 0: forever).  0 when
 * done, SL_EDISCONNECTED (message set) or SL_ETIMEDOUT. */
int sli_wait_answer(sl_client *c, const int *done, int timeout_ms);

/* registry.c: the triple registry (c->tbuckets) */
/* Removes s from the triple registry if it is there (takes c->mu). */
void sli_client_unregister(sl_client *c, sli_csub *s);
/* Registers s's triple, gives s its id and posts its Subscribe command (which takes one
 * reference to s).  SL_EDUPLICATE if the triple is taken, SL_EDISCONNECTED if the connection is
 * gone, SL_ENOMEM. */
int sli_client_subscribe(sl_client *c, sli_csub *s);

/* cluster.c */
/* The process that hosts worker's subscriptions: the connection they live on. */
static inline uint32_t sli_worker_proc(const sl_client *c, uint32_t worker)
{
	return worker % c->nconns;
}

/* The cluster map learnt at open (for a standby following one process of a cluster): its
 * fingerprint, the number of processes, which one cfg->server is, and each process's entry
 * (addresses separated by '/', primary first; valid until sl_client_close). */
void sli_client_map(const sl_client *c, uint64_t *fingerprint, uint32_t *count,
                    uint32_t *process, const char (**entries)[SLI_MAP_ENTRY_MAX]);

/* replica_link.c: the replica link of a storage standby (src/replica) over this client.
 * sli_client_replica: declares the client the standby `member` (its own address) on this and
 * every later connection, before any subscription is made; its subscriptions then read to the
 * upper and get SL_EV_WATERMARK.  sli_client_replica_ack: tells the process followed that the
 * standby's log of (source, worker) is durable up to `upper`.  Both 0, SL_EARG, SL_ENOMEM. */
int sli_client_replica(sl_client *c, const char *member);
int sli_client_replica_ack(sl_client *c, uint64_t source, uint32_t worker, uint64_t upper);
/* Runtime thread: appends Replica to out after a new connection's Hello (nothing outside a
 * replica link).  0 or SL_ENOMEM. */
int sli_replica_after_hello(sl_client *c, sli_buf *out);

#endif
