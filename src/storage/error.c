/*
 * error.c - the storage runtime's last error message, one per thread: set where an error is
 * found, read by sl_storage_last_error.
 */
#include <stdarg.h>
#include <stdio.h>

#include "storage/storage_int.h"

static _Thread_local char last_error[512];

SL_API const char *sl_storage_last_error(void)
{
	return last_error;
}

void sli_storage_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}
