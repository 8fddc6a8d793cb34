/*
 * error.c - the calling thread's text for the last failed coord call (etcd client, election),
 * as sl_client_last_error is for the compute runtime.
 */
#include <stdarg.h>
#include <stdio.h>

#include "coord/coord_int.h"

static _Thread_local char last_error[512];

void sli_coord_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *sli_coord_last_error(void)
{
	return last_error;
}
