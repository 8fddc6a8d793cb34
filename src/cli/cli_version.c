/*
 * cli_version.c - the one line `sluiced --version` and `sluice --version` print.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "sluice/sluice.h"

void cli_print_version(const char *program)
{
	printf("%s %s (git %s)\n", program, sl_version(), sl_revision());
}
