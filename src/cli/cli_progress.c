/*
 * cli_progress.c - one line of progress on stderr where a person waits (`sluice ingest` reading
 * and sending a large batch), redrawn in place at most five times a second, and only when stderr
 * is a terminal: scripts and pipes never see it.
 */
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

int cli_progress_due(cli_progress *p, int force)
{
	uint64_t now;

	if (!p->on)
		return 0;
	now = cli_now_ms();
	if (!force && p->drawn && now - p->last_ms < REDRAW_MS)
		return 0;
	p->last_ms = now;
	return 1;
}

void cli_progress_draw(cli_progress *p, const char *line)
{
	p->drawn = 1;
	/* back to the start of the line, erase it, write the new one */
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
	if (p->on && p->drawn)
		fputs("\n", stderr);
	p->drawn = 0;
}
