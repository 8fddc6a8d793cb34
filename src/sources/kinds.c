/*
 * kinds.c - the table of built-in source kinds and sli_source_start, which parses a spec and
 * hands it to its kind's starter.  The one place that knows every kind: the kinds themselves
 * use spec.c and runner.c and never call back here.
 */
#include <string.h>

#include "sources/sources.h"

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
		return sli_spec_error(err, errlen, "invalid argument");
	if ((rc = sli_spec_parse(spec, &sp, err, errlen)) != 0)
		return rc;
	rc = sli_spec_error(err, errlen,
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
