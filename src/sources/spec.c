/*
 * spec.c - parsing of source specs (`NAME=KIND[,key=value...]`), the runner every built-in
 * source shares (one thread, an interruptible sleep), and sli_source_start's dispatch by kind.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sources/sources.h"

#define NAME_MAX_LEN 128

static int spec_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int spec_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return SL_EARG;
}

static int name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

int sli_spec_parse(const char *s, sli_spec *sp, char *err, size_t errlen)
{
	char *p, *eq, *item, *next;
	size_t i;

	memset(sp, 0, sizeof(*sp));
	if ((sp->buf = strdup(s)) == NULL)
		return spec_error(err, errlen, "out of memory"), SL_ENOMEM;
	p = sp->buf;
	if ((eq = strchr(p, '=')) == NULL) {
		spec_error(err, errlen, "bad source spec '%s': expected NAME=KIND[,key=value...]", s);
		goto err_free;
	}
	*eq = '\0';
	sp->name = p;
	if (*sp->name == '\0') {
		spec_error(err, errlen, "bad source spec '%s': empty source name", s);
		goto err_free;
	}
	if (strlen(sp->name) > NAME_MAX_LEN) {
		spec_error(err, errlen, "bad source spec: source name longer than %d bytes", NAME_MAX_LEN);
		goto err_free;
	}
	for (p = (char *)sp->name; *p; p++) {
		if (!name_char_ok(*p)) {
			spec_error(err, errlen,
			           "bad source name '%s': use only letters, digits, '_', '-' and '.'",
			           sp->name);
			goto err_free;
		}
	}
	sp->kind = eq + 1;
	if ((next = strchr(eq + 1, ',')) != NULL)
		*next++ = '\0';
	if (*sp->kind == '\0') {
		spec_error(err, errlen, "bad source spec for '%s': missing kind", sp->name);
		goto err_free;
	}
	while (next != NULL) {
		item = next;
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		if (*item == '\0') {
			spec_error(err, errlen, "bad source spec for '%s': empty key=value item", sp->name);
			goto err_free;
		}
		if ((eq = strchr(item, '=')) == NULL || eq == item) {
			spec_error(err, errlen, "bad source spec for '%s': '%s' is not key=value", sp->name,
			           item);
			goto err_free;
		}
		*eq = '\0';
		for (i = 0; i < sp->nkv; i++) {
			if (strcmp(sp->kv[i].key, item) == 0) {
				spec_error(err, errlen, "bad source spec for '%s': key '%s' given twice",
				           sp->name, item);
				goto err_free;
			}
		}
		if (sp->nkv == SLI_SPEC_MAX_KEYS) {
			spec_error(err, errlen, "bad source spec for '%s': too many keys", sp->name);
			goto err_free;
		}
		sp->kv[sp->nkv].key = item;
		sp->kv[sp->nkv].value = eq + 1;
		sp->kv[sp->nkv].used = 0;
		sp->nkv++;
	}
	return 0;
err_free:
	free(sp->buf);
	sp->buf = NULL;
	return SL_EARG;
}

void sli_spec_fini(sli_spec *sp)
{
	if (sp == NULL)
		return;
	free(sp->buf);
	sp->buf = NULL;
}

const char *sli_spec_get(sli_spec *sp, const char *key)
{
	size_t i;

	for (i = 0; i < sp->nkv; i++) {
		if (strcmp(sp->kv[i].key, key) == 0) {
			sp->kv[i].used = 1;
			return sp->kv[i].value;
		}
	}
	return NULL;
}

int sli_spec_get_u64(sli_spec *sp, const char *key, uint64_t def, uint64_t min, uint64_t max,
                     uint64_t *out, char *err, size_t errlen)
{
	const char *v = sli_spec_get(sp, key);
	unsigned long long x;
	char *end;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (*v < '0' || *v > '9')
		return spec_error(err, errlen, "source '%s': %s=%s is not a non-negative integer",
		                  sp->name, key, v);
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return spec_error(err, errlen, "source '%s': %s=%s is not a non-negative integer",
		                  sp->name, key, v);
	if (x < min || x > max)
		return spec_error(err, errlen, "source '%s': %s=%s is out of range [%llu, %llu]",
		                  sp->name, key, v, (unsigned long long)min, (unsigned long long)max);
	*out = x;
	return 0;
}

int sli_spec_check_used(const sli_spec *sp, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < sp->nkv; i++) {
		if (!sp->kv[i].used)
			return spec_error(err, errlen, "source '%s': unknown key '%s' for kind %s",
			                  sp->name, sp->kv[i].key, sp->kind);
	}
	return 0;
}

int sli_source_register_spec(sl_storage *st, const sli_spec *sp, uint32_t workers,
                             unsigned flags, sl_source **out, char *err, size_t errlen)
{
	int rc = sl_source_register(st, sp->name, sp->kind, workers, flags, out);

	if (rc == SL_EDUPLICATE)
		spec_error(err, errlen, "source '%s' is defined twice", sp->name);
	else if (rc != 0 && sl_storage_last_error()[0] != '\0')
		spec_error(err, errlen, "cannot register source '%s': %s", sp->name, sl_storage_last_error());
	else if (rc != 0)
		spec_error(err, errlen, "cannot register source '%s': %s", sp->name, sl_strerror(rc));
	return rc;
}

/* ---- the runner ---- */

uint64_t sli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

sli_source_runner *sli_runner_new(sl_source *src)
{
	sli_source_runner *r;
	pthread_condattr_t ca;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->src = src;
	atomic_init(&r->stopping, 0);
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	return r;
}

int sli_runner_start(sl_source *src, const char *name, void *state, void (*free_state)(void *),
                     void *(*fn)(void *), sli_source_runner **out, char *err, size_t errlen)
{
	sli_source_runner *r = sli_runner_new(src);
	int rc;

	if (r == NULL) {
		free_state(state);
		snprintf(err, errlen, "source '%s': out of memory", name);
		return SL_ENOMEM;
	}
	r->state = state;
	r->free_state = free_state;
	if ((rc = sli_runner_spawn(r, fn)) != 0) {
		snprintf(err, errlen, "source '%s': cannot start its thread: %s", name, sl_strerror(rc));
		sli_source_stop(r); /* frees the state */
		return rc;
	}
	*out = r;
	return 0;
}

int sli_runner_spawn(sli_source_runner *r, void *(*fn)(void *))
{
	int rc = pthread_create(&r->thread, NULL, fn, r);

	if (rc != 0)
		return -rc;
	r->has_thread = 1;
	return 0;
}

int sli_runner_sleep(sli_source_runner *r, uint64_t ns)
{
	struct timespec ts;
	uint64_t deadline = sli_now_ns() + ns;
	int stopping;

	ts.tv_sec = (time_t)(deadline / 1000000000u);
	ts.tv_nsec = (long)(deadline % 1000000000u);
	pthread_mutex_lock(&r->mu);
	while (!(stopping = atomic_load(&r->stopping))) {
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&r->mu);
	return stopping;
}

void sli_source_stop(sli_source_runner *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stopping, 1);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (r->has_thread)
		pthread_join(r->thread, NULL);
	if (r->free_state != NULL)
		r->free_state(r->state);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

sl_source *sli_source_handle(const sli_source_runner *r)
{
	return r->src;
}

/* ---- dispatch ---- */

static const struct {
	const char *kind;
	int (*start)(sl_storage *, sli_spec *, sli_source_runner **, char *, size_t);
} kinds[] = {
	{"counter", sli_counter_start},
	{"file", sli_file_start},
	{"ingest", sli_ingest_start},
	{"postgres", sli_postgres_start},
};

int sli_source_start(sl_storage *st, const char *spec, sli_source_runner **out, char *err,
                     size_t errlen)
{
	sli_spec sp;
	size_t i;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (st == NULL || spec == NULL || out == NULL)
		return spec_error(err, errlen, "invalid argument");
	if ((rc = sli_spec_parse(spec, &sp, err, errlen)) != 0)
		return rc;
	rc = spec_error(err, errlen,
	                "source '%s': unknown kind '%s' (kinds: counter, file, ingest, postgres)",
	                sp.name, sp.kind);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(kinds[i].kind, sp.kind) == 0) {
			if (err != NULL && errlen > 0)
				err[0] = '\0';
			rc = kinds[i].start(st, &sp, out, err, errlen);
			break;
		}
	}
	sli_spec_fini(&sp);
	return rc;
}
