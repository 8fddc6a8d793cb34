/*
 * log.h - the operator's event log: one line per event worth knowing, with a level, as text
 * or JSON, each line written with one write(2) so lines of concurrent threads never mix.
 *
 * Off until sli_elog_setup is called (an embedder of libsluice gets no output it did not ask
 * for; sluiced turns it on).  Setup is done once, before threads start; sli_elog may then be
 * called from any thread.  Not the durable log (that is src/log).
 */
#ifndef SLUICE_COMMON_LOG_H
#define SLUICE_COMMON_LOG_H

#include <stdarg.h>

/* SLI_LOG_ALWAYS: an info event written at every level (once the log is on), for lines scripts
 * wait for, like sluiced's "listening on". */
enum sli_level { SLI_LOG_ALWAYS = -1, SLI_LOG_ERROR = 0, SLI_LOG_WARN, SLI_LOG_INFO, SLI_LOG_DEBUG };
enum sli_log_format { SLI_LOG_TEXT = 0, SLI_LOG_JSON };

/* A structured field of an event: key and value (text).  num != 0: the value is a number,
 * written unquoted in JSON.  Arrays of fields end with {NULL}. */
typedef struct sli_kv {
	const char *key;
	const char *val;
	int num;
} sli_kv;

/* Turns the log on: events at `level` or more severe go to fd as `format`.  Text lines read
 * "PROG: MESSAGE" for info and "PROG: LEVEL: MESSAGE" otherwise; JSON lines are objects with
 * ts, level, event, msg and the event's fields.  prog is borrowed (a string literal). */
void sli_elog_setup(const char *prog, int level, int format, int fd);

/* Whether an event at this level would be written (to skip formatting costs). */
int sli_elog_enabled(int level);

/* Writes one event (message from fmt; fields may be NULL).  Thread-safe; never fails loudly:
 * a line too long is truncated, a failed write is dropped. */
void sli_elog(int level, const char *event, const sli_kv *fields, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void sli_velog(int level, const char *event, const sli_kv *fields, const char *fmt, va_list ap);

/* "error", "warn", "info", "debug" <-> level; -1 for an unknown name. */
int sli_elog_level_parse(const char *name);

#endif
