/*
 * ingest.c - the `ingest` source: rows pushed by clients (`sluice ingest`).
 *
 * Key: workers=W (default 1).  The source is registered with SL_SOURCE_INGEST; the storage
 * runtime itself turns each client Append into one atomic batch at one time, routing rows with
 * sl_ingest_route.  So there is no thread here: the runner only remembers the source.
 */
#include <stdio.h>

#include "sources/sources.h"

int sli_ingest_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                     size_t errlen)
{
	uint64_t workers;
	sl_source *src;
	sli_source_runner *r;
	int rc;

	if ((rc = sli_spec_get_u64(sp, "workers", 1, 1, SLI_SOURCE_MAX_WORKERS, &workers, err,
	                           errlen)) != 0 ||
	    (rc = sli_spec_check_used(sp, err, errlen)) != 0)
		return rc;
	if ((rc = sli_source_register_spec(st, sp, (uint32_t)workers, SL_SOURCE_INGEST, &src, err,
	                                   errlen)) != 0)
		return rc;
	if ((r = sli_runner_new(src)) == NULL) {
		snprintf(err, errlen, "source '%s': out of memory", sp->name);
		return SL_ENOMEM;
	}
	*out = r;
	return 0;
}
