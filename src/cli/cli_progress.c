/*
 * cli_progress.c - one line of progress on stderr where a person waits (`sluice ingest` reading
 * and sending a large batch), redrawn in place at most five times a second, and only when stderr
 * is a terminal: scripts and pipes never see it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"

#define REDRAW_MS 200

void cli_progress_init(cli_progress *p)
{
	p->on = isatty(STDERR_FILENO);
	p->drawn = 0;
	p->last_ms = 0;
}

void cli_progress_show(cli_progress *p, int force, const char *fmt, ...)
{
	uint64_t now;
	va_list ap;

	if (!p->on)
		return;
	now = cli_now_ms();
	if (!force && p->drawn && now - p->last_ms < REDRAW_MS)
		return;
	p->last_ms = now;
	p->drawn = 1;
	fputs("\r\033[K", stderr); /* back to the start of the line, erase it */
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
	if (p->on && p->drawn)
		fputs("\n", stderr);
	p->drawn = 0;
}
