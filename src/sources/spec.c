/*
 * spec.c - parsing of source specs (`NAME=KIND[,key=value...]`), the accessors a kind reads its
 * keys with, and registering the named source.  The runner is in runner.c, the dispatch by kind
 * in kinds.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sources/sources.h"

#define NAME_MAX_LEN 128

int sli_spec_error(char *err, size_t errlen, const char *fmt, ...)
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
		return sli_spec_error(err, errlen, "out of memory"), SL_ENOMEM;
	p = sp->buf;
	if ((eq = strchr(p, '=')) == NULL) {
		sli_spec_error(err, errlen, "bad source spec '%s': expected NAME=KIND[,key=value...]",
		               s);
		goto err_free;
	}
	*eq = '\0';
	sp->name = p;
	if (*sp->name == '\0') {
		sli_spec_error(err, errlen, "bad source spec '%s': empty source name", s);
		goto err_free;
	}
	if (strlen(sp->name) > NAME_MAX_LEN) {
		sli_spec_error(err, errlen, "bad source spec: source name longer than %d bytes",
		               NAME_MAX_LEN);
		goto err_free;
	}
	for (p = (char *)sp->name; *p; p++) {
		if (!name_char_ok(*p)) {
			sli_spec_error(err, errlen,
			               "bad source name '%s': use only letters, digits, '_', '-' and '.'",
			               sp->name);
			goto err_free;
		}
	}
	sp->kind = eq + 1;
	if ((next = strchr(eq + 1, ',')) != NULL)
		*next++ = '\0';
	if (*sp->kind == '\0') {
		sli_spec_error(err, errlen, "bad source spec for '%s': missing kind", sp->name);
		goto err_free;
	}
	while (next != NULL) {
		item = next;
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		if (*item == '\0') {
			sli_spec_error(err, errlen, "bad source spec for '%s': empty key=value item",
			               sp->name);
			goto err_free;
		}
		if ((eq = strchr(item, '=')) == NULL || eq == item) {
			sli_spec_error(err, errlen, "bad source spec for '%s': '%s' is not key=value",
			               sp->name, item);
			goto err_free;
		}
		*eq = '\0';
		for (i = 0; i < sp->nkv; i++) {
			if (strcmp(sp->kv[i].key, item) == 0) {
				sli_spec_error(err, errlen, "bad source spec for '%s': key '%s' given twice",
				               sp->name, item);
				goto err_free;
			}
		}
		if (sp->nkv == SLI_SPEC_MAX_KEYS) {
			sli_spec_error(err, errlen, "bad source spec for '%s': too many keys", sp->name);
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
		return sli_spec_error(err, errlen, "source '%s': %s=%s is not a non-negative integer",
		                      sp->name, key, v);
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return sli_spec_error(err, errlen, "source '%s': %s=%s is not a non-negative integer",
		                      sp->name, key, v);
	if (x < min || x > max)
		return sli_spec_error(err, errlen, "source '%s': %s=%s is out of range [%llu, %llu]",
		                      sp->name, key, v, (unsigned long long)min, (unsigned long long)max);
	*out = x;
	return 0;
}

int sli_spec_check_used(const sli_spec *sp, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < sp->nkv; i++) {
		if (!sp->kv[i].used)
			return sli_spec_error(err, errlen, "source '%s': unknown key '%s' for kind %s",
			                      sp->name, sp->kv[i].key, sp->kind);
	}
	return 0;
}

int sli_source_register_spec(sl_storage *st, const sli_spec *sp, uint32_t workers,
                             unsigned flags, sl_source **out, char *err, size_t errlen)
{
	int rc = sl_source_register(st, sp->name, sp->kind, workers, flags, out);

	/* Registered already by a standby's follower (sluiced --etcd, now leading): produce into
	 * it.  sluiced refuses two specs of one name before this. */
	if (rc == SL_EDUPLICATE && sl_source_find(st, sp->name, sp->kind, workers, out) == 0)
		return 0;
	if (rc == SL_EDUPLICATE)
		sli_spec_error(err, errlen, "source '%s' is defined twice", sp->name);
	else if (rc != 0 && sl_storage_last_error()[0] != '\0')
		sli_spec_error(err, errlen, "cannot register source '%s': %s", sp->name,
		               sl_storage_last_error());
	else if (rc != 0)
		sli_spec_error(err, errlen, "cannot register source '%s': %s", sp->name, sl_strerror(rc));
	return rc;
}
