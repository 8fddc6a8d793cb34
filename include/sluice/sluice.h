/*
 * sluice.h - types shared by the storage and the compute side of libsluice.
 *
 * An update is (row, time, diff): row is opaque bytes, time a u64, diff an i64, as in
 * differential dataflow.  Every source has two collections, `ok` (data) and `err` (errors), and
 * W workers (partitions).  A worker's frontier ("upper") is the least time at which it may still
 * produce updates; SL_TIME_CLOSED means it never will again.
 *
 * Conventions of every public header (storage.h, compute.h); a function's own comment says only
 * where it departs from them.
 *
 * Errors.  A function returning int returns 0 (or a count, or 1, where its comment says so) on
 * success and a negative code on failure: -errno for the operating system (e.g. -ECONNREFUSED,
 * -ENOSPC), SL_E* below for sluice.  sl_strerror() names both.  The SL_E* a function lists are
 * the ones it returns itself or passes on from what it calls; -errno values are listed only
 * where they mean something particular.  Out-parameters are written only on success.  There is
 * no global error state: sl_storage_last_error() and sl_client_last_error() each keep one line
 * per thread, written by the functions that say so (and not cleared by the others).
 *
 * Ownership.  A pointer argument is borrowed for the duration of the call: libsluice copies
 * whatever it keeps (strings, config structs, rows), so the caller may free or reuse it as soon
 * as the call returns.  The exceptions say so (sl_storage_config.warn_arg).  A handle
 * (sl_storage, sl_client, sl_queue) is owned by the caller from the call that creates it to the
 * one that frees it (its _close); an sl_source belongs to its sl_storage.  A result that the
 * caller must free names its free function; any other pointer a function returns or writes
 * (strings, sl_bytes, events) points into memory libsluice owns, valid for as long as its comment
 * says.  _close and _free functions accept NULL.
 *
 * Threads.  "Thread-safe" means: may be called from any thread, concurrently with any other
 * call on the same object, except the call that frees it.  No function may be called on a
 * handle while, or after, another thread frees it.  Otherwise a function's comment says which
 * thread may call it.  libsluice runs user code only in the callbacks it documents (today only
 * sl_storage_config.warn).  It never raises SIGPIPE (plain sockets are written with
 * MSG_NOSIGNAL; TLS writes block SIGPIPE on the writing thread for their duration), and the
 * descriptors it keeps open (sockets, eventfds, logs) are close-on-exec.
 */
#ifndef SLUICE_SLUICE_H
#define SLUICE_SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SLUICE_BUILDING) && defined(__GNUC__)
#define SL_API __attribute__((visibility("default")))
#else
#define SL_API
#endif

/* The frontier value meaning "closed": no update will ever be produced again.  Times of updates
 * are therefore at most SL_TIME_CLOSED - 1. */
#define SL_TIME_CLOSED UINT64_MAX

/* The largest row (or err message) accepted anywhere, in bytes. */
#define SL_ROW_MAX (64u * 1024u - 64u)

/* sluice's own error codes.  They are negative, and far below any -errno. The same numbers,
 * negated, travel on the wire as the code of Error and SubscribeError frames. */
enum {
	SL_EPROTO = -1000,    /* malformed frame or protocol violation */
	SL_EVERSION = -1001,  /* protocol version not supported */
	SL_ETOOBIG = -1002,   /* frame, row or batch larger than the limit */
	SL_ENOSOURCE = -1003, /* no such source */
	SL_ENOWORKER = -1004, /* worker out of range */
	SL_EDUPLICATE = -1005, /* already subscribed / name or handle already in use */
	SL_ENOTSUB = -1006,   /* not subscribed */
	SL_EBADHANDLE = -1007, /* unknown subscription handle */
	SL_ECREDIT = -1008,   /* credit grant would overflow */
	SL_ECLOSED = -1009,   /* the worker, queue or runtime is closed */
	SL_ETIME = -1010,     /* time is before the worker's upper, or frontier would go backwards */
	SL_EARG = -1011,      /* invalid argument */
	SL_ENOMEM = -1012,    /* out of memory */
	SL_ETIMEDOUT = -1013, /* no answer in time */
	SL_EDISCONNECTED = -1014, /* the connection to storage was lost */
	SL_EREJECTED = -1015, /* the request was refused (e.g. an ingest batch with a bad row) */
	SL_EIO = -1016,       /* a storage I/O error (disk full, ...) */
	SL_EKIND = -1017,     /* operation not supported by this source's kind */
	SL_EIDLE = -1018,     /* peer stopped answering heartbeats */
	SL_EWRONGOWNER = -1019, /* the worker is hosted by another storage process */
	SL_ECLUSTER = -1020,  /* storage processes disagree about the cluster (lists or sources) */
	SL_EFENCED = -1021,   /* this storage process was superseded by a promoted standby */
	SL_EAUTH = -1022,     /* authentication failed (missing or wrong token) */
	SL_ETLS = -1023,      /* TLS failed: handshake, certificate, or a peer that does not speak TLS */
	SL_ELIMIT = -1024,    /* a server limit was reached (connections, request rate, output) */
	SL_EETCD = -1025,     /* the coordination service (etcd) is unreachable or failing */
	SL_ELEASE = -1026,    /* the etcd lease expired or is unknown: leadership is lost */
	SL_ENOTINSYNC = -1027, /* fewer copies of the process's data are in sync than required */
	SL_EAGAIN = -1028,    /* no room now (a producer's full window): try again later */
};

/* A static, human-readable string naming `code`: "success" for 0, the SL_E* text, the
 * operating system's description of -errno, or "unknown error".  Never NULL; never to be freed.
 * Thread-safe. */
SL_API const char *sl_strerror(int code);

/* The library's release ("X.Y.Z") and the git commit it was built from (12 hex digits, with
 * "-dirty" if the tree had uncommitted changes, or "unknown" outside a git checkout).  Static
 * strings, never freed; thread-safe; cannot fail. */
SL_API const char *sl_version(void);
SL_API const char *sl_revision(void);

/* A byte view: ptr and len into bytes someone else owns (ptr may be NULL when len is 0).  As an
 * argument it is read during the call only; handed out by libsluice (a row of an event, a
 * message) it is valid as long as the function that produced it says. */
typedef struct sl_bytes {
	const uint8_t *ptr;
	size_t len;
} sl_bytes;

/* The worker, of `workers`, an ingested row is routed to: 64-bit FNV-1a of the row's bytes
 * mod workers (0 when workers is 0).  Storage and every client compute the same value, so it is
 * part of the protocol and never changes between versions.  Pure; thread-safe. */
SL_API uint32_t sl_ingest_route(sl_bytes row, uint32_t workers);

typedef enum sl_collection {
	SL_OK = 0,  /* the data collection */
	SL_ERR = 1, /* the error collection */
} sl_collection;

/* One update.  Passed to libsluice (sl_source_append, sl_client_append, ...), the array and
 * its rows are read during the call only: the rows are copied. */
typedef struct sl_update {
	sl_bytes row;
	uint64_t time;
	int64_t diff;
} sl_update;

#ifdef __cplusplus
}
#endif
#endif
