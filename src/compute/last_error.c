/*
 * last_error.c - the calling thread's last client error message (sl_client_last_error).
 *
 * One buffer per thread: a call that fails sets it on the caller's thread, so threads never see
 * each other's messages.
 */
#include "compute/runtime.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

void sli_set_last_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *sl_client_last_error(void)
{
	return last_error;
}
