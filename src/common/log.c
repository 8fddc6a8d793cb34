/*
 * log.c - the operator's event log (see log.h).  Each line is formatted into a stack buffer
 * and leaves in one write(2): POSIX makes writes to a pipe of at most PIPE_BUF bytes atomic,
 * and a file opened O_APPEND gets whole lines too, so no lock is needed.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define LINE_MAX_BYTES 4096

static const char *log_prog = "sluice";
static atomic_int log_level = -1; /* off */
static int log_format = SLI_LOG_TEXT;
static int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sli_elog_setup(const char *prog, int level, int format, int fd)
{
	log_prog = prog;
	log_format = format;
	log_fd = fd;
	atomic_store(&log_level, level);
}

int sli_elog_enabled(int level)
{
	int max = atomic_load_explicit(&log_level, memory_order_relaxed);
	return max >= 0 && level <= max;
}

int sli_elog_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	if (strcmp(name, "warning") == 0)
		return SLI_LOG_WARN;
	return -1;
}

/* Appends s to line[*n, cap) as the inside of a JSON string. */
static void put_json_str(char *line, size_t *n, size_t cap, const char *s)
{
	for (; *s != '\0' && *n + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			line[(*n)++] = '\\';
			line[(*n)++] = (char)ch;
		} else if (ch == '\n') {
			line[(*n)++] = '\\';
			line[(*n)++] = 'n';
		} else if (ch == '\t') {
			line[(*n)++] = '\\';
			line[(*n)++] = 't';
		} else if (ch < 0x20 || ch == 0x7f) {
			*n += (size_t)snprintf(line + *n, cap - *n, "\\u%04x", ch);
		} else {
			line[(*n)++] = (char)ch;
		}
	}
}

static void put_raw(char *line, size_t *n, size_t cap, const char *s)
{
	size_t len = strlen(s);
	if (len > cap - *n - 2)
		len = cap - *n - 2;
	/* a counted line for write(2), never read as a C string */
	memcpy(line + *n, s, len); // NOLINT(bugprone-not-null-terminated-result)
	*n += len;
}

void sli_velog(int level, const char *event, const sli_kv *fields, const char *fmt, va_list ap)
{
	char msg[2048], line[LINE_MAX_BYTES];
	size_t n = 0, cap = sizeof(line);

	if (!sli_elog_enabled(level) || level > SLI_LOG_DEBUG)
		return;
	if (level < 0)
		level = SLI_LOG_INFO; /* SLI_LOG_ALWAYS */
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_format == SLI_LOG_JSON) {
		struct timespec ts;
		struct tm tm;
		char when[40];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		n = (size_t)snprintf(line, cap, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"event\":\"", when,
		                     ts.tv_nsec / 1000000, level_names[level]);
		put_json_str(line, &n, cap - 64, event);
		put_raw(line, &n, cap - 64, "\",\"msg\":\"");
		put_json_str(line, &n, cap - 64, msg);
		put_raw(line, &n, cap - 64, "\"");
		for (const sli_kv *kv = fields; kv != NULL && kv->key != NULL; kv++) {
			put_raw(line, &n, cap - 64, ",\"");
			put_json_str(line, &n, cap - 64, kv->key);
			put_raw(line, &n, cap - 64, kv->num ? "\":" : "\":\"");
			if (kv->num)
				put_raw(line, &n, cap - 64, kv->val[0] ? kv->val : "0");
			else
				put_json_str(line, &n, cap - 64, kv->val);
			if (!kv->num)
				put_raw(line, &n, cap - 64, "\"");
		}
		/* The reserve of 64 bytes above always leaves room to close the object. */
		line[n++] = '}';
	} else {
		if (level == SLI_LOG_INFO)
			n = (size_t)snprintf(line, cap - 1, "%s: %s", log_prog, msg);
		else
			n = (size_t)snprintf(line, cap - 1, "%s: %s: %s", log_prog,
			                     level == SLI_LOG_WARN ? "warning" : level_names[level], msg);
		if (n > cap - 2)
			n = cap - 2;
	}
	line[n++] = '\n';
	ssize_t w = write(log_fd, line, n);
	(void)w; /* nowhere to report a failed log write */
}

void sli_elog(int level, const char *event, const sli_kv *fields, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sli_velog(level, event, fields, fmt, ap);
	va_end(ap);
}
