/*
 * strerror.c - human-readable strings for every error code libsluice returns.
 *
 * sluice's own SL_E* codes come from a static table; a negative errno is described by glibc's
 * strerrordesc_np, which (unlike strerror) returns a static string and so is thread-safe.  No
 * allocation, no locale, no I/O.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <string.h>

#include "sluice/sluice.h"

/* Indexed by SL_EPROTO - code; keep in step with the enum in sluice.h. */
static const char *const sl_messages[] = {
	"malformed frame or protocol violation",                  /* SL_EPROTO */
	"protocol version not supported",                         /* SL_EVERSION */
	"frame, row or batch larger than the limit",              /* SL_ETOOBIG */
	"no such source",                                         /* SL_ENOSOURCE */
	"worker out of range",                                    /* SL_ENOWORKER */
	"already subscribed, or name or handle already in use",   /* SL_EDUPLICATE */
	"not subscribed",                                         /* SL_ENOTSUB */
	"unknown subscription handle",                            /* SL_EBADHANDLE */
	"credit grant would overflow",                            /* SL_ECREDIT */
	"worker, queue or runtime is closed",                     /* SL_ECLOSED */
	"time is before the worker's upper, or frontier would go backwards", /* SL_ETIME */
	"invalid argument",                                       /* SL_EARG */
	"out of memory",                                          /* SL_ENOMEM */
	"no answer in time",                                      /* SL_ETIMEDOUT */
	"connection to storage lost",                             /* SL_EDISCONNECTED */
	"request refused",                                        /* SL_EREJECTED */
	"storage I/O error",                                      /* SL_EIO */
	"operation not supported by this source's kind",          /* SL_EKIND */
	"peer stopped answering heartbeats",                      /* SL_EIDLE */
	"worker is hosted by another storage process",            /* SL_EWRONGOWNER */
	"storage processes disagree about the cluster",           /* SL_ECLUSTER */
	"storage process superseded by a promoted standby",       /* SL_EFENCED */
	"authentication failed",                                  /* SL_EAUTH */
	"TLS failure",                                            /* SL_ETLS */
	"a server limit was reached",                             /* SL_ELIMIT */
	"coordination service (etcd) unreachable or failing",     /* SL_EETCD */
	"etcd lease expired or unknown (leadership lost)",        /* SL_ELEASE */
	"not enough copies in sync",                              /* SL_ENOTINSYNC */
	"no room now: try again later",                          /* SL_EAGAIN */
};

#define SL_NMESSAGES (sizeof(sl_messages) / sizeof(sl_messages[0]))

_Static_assert(SL_NMESSAGES == (size_t)(SL_EPROTO - SL_EAGAIN + 1), // NOLINT(bugprone-misplaced-widening-cast): a small constant
	"sl_messages must name every SL_E* code");

SL_API const char *sl_strerror(int code)
{
	const char *s;

	if (code == 0)
		return "success";
	if (code <= SL_EPROTO && code >= SL_EAGAIN)
		return sl_messages[SL_EPROTO - code];
	/* -errno: errno values are small positive ints, far above SL_EPROTO. */
	if (code < 0 && code > SL_EPROTO && (s = strerrordesc_np(-code)) != NULL)
		return s;
	return "unknown error";
}
