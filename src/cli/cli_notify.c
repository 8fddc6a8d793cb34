/*
 * cli_notify.c - telling a service manager what sluiced is doing (systemd's Type=notify
 * protocol, through libsystemd's sd_notify).
 *
 * Every call is a no-op unless the manager set NOTIFY_SOCKET, so sluiced run by hand or by a
 * test behaves exactly the same.  The messages: STATUS= whenever what sluiced does changes,
 * READY=1 once it listens with every source recovered and registered, STOPPING=1 when a signal
 * asks it to stop, and WATCHDOG=1 at half the interval the manager asked for (WATCHDOG_USEC).
 */
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "cli/cli.h"

void cli_notify_status(const char *status)
{
	sd_notifyf(0, "STATUS=%s", status);
}

void cli_notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void cli_notify_stopping(const char *status)
{
	sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}

uint64_t cli_notify_watchdog_usec(void)
{
	uint64_t usec = 0;
	return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

void cli_notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}
