/*
 * cli_limits.c - sluiced's limit flags (--max-connections, --max-subscribe-rate, ...): parsing
 * each into the storage configuration, and the file-descriptor limit that --max-connections
 * needs.  The limits themselves are enforced by the library (src/storage/limits.c, conn.c).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "sluice/storage.h"

enum { U32, SIZE, U64 };

static const struct limit_flag {
	const char *name;
	int type;
	uint64_t min, max;
	size_t offset;
	const char *what;
} flags[] = {
	{"max-connections", U32, 1, 1000000, offsetof(sl_storage_config, max_connections), "a number of connections"},
	{"max-subscriptions", U32, 1, 1u << 24, offsetof(sl_storage_config, max_subscriptions), "a number of subscriptions"},
	{"max-subscribe-rate", U32, 1, 100000000, offsetof(sl_storage_config, subscribe_rate), "requests per second, N or N/s"},
	{"subscribe-burst", U32, 1, 100000000, offsetof(sl_storage_config, subscribe_burst), "a number of requests"},
	{"handshake-timeout", U32, 10, 3600000, offsetof(sl_storage_config, handshake_timeout_ms), "milliseconds"},
	{"idle-timeout", U32, 2000, 86400000, offsetof(sl_storage_config, idle_timeout_ms), "milliseconds"},
	{"max-frame", U32, 128u << 10, 64u << 20, offsetof(sl_storage_config, max_frame), "bytes"},
	{"max-output", SIZE, 1u << 20, 1ull << 40, offsetof(sl_storage_config, max_output), "bytes"},
	{"max-batch-bytes", U64, 1, 1ull << 40, offsetof(sl_storage_config, max_batch_bytes), "bytes"},
	{"max-batch-rows", U32, 1, UINT32_MAX, offsetof(sl_storage_config, max_batch_rows), "a number of updates"},
	{"max-row", U32, 1, SL_ROW_MAX, offsetof(sl_storage_config, max_row), "bytes"},
};

int cli_limit_option(const char *name, const char *val, sl_storage_config *cfg, char *err,
                     size_t errlen)
{
	char buf[32];
	uint64_t v;
	size_t n;

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		const struct limit_flag *f = &flags[i];
		if (strcmp(name, f->name) != 0)
			continue;
		n = strlen(val);
		if (strcmp(f->name, "max-subscribe-rate") == 0 && n > 2 && strcmp(val + n - 2, "/s") == 0)
			n -= 2;
		if (n == 0 || n >= sizeof(buf))
			goto bad;
		memcpy(buf, val, n);
		buf[n] = '\0';
		if (cli_parse_u64(buf, &v) != 0 || v < f->min || v > f->max)
			goto bad;
		char *p = (char *)cfg + f->offset;
		if (f->type == U32) {
			uint32_t u = (uint32_t)v;
			memcpy(p, &u, sizeof(u));
		} else if (f->type == SIZE) {
			size_t z = (size_t)v;
			memcpy(p, &z, sizeof(z));
		} else {
			memcpy(p, &v, sizeof(v));
		}
		return 1;
bad:
		snprintf(err, errlen, "bad --%s '%s': expected %s from %llu to %llu", f->name, val, f->what,
		         (unsigned long long)f->min, (unsigned long long)f->max);
		return -1;
	}
	return 0;
}

int cli_raise_nofile(uint32_t max_connections, char *note, size_t notelen)
{
	struct rlimit rl;
	/* Logs, listening socket, peers: a margin over one descriptor per connection. */
	rlim_t need = (rlim_t)max_connections + 256;

	note[0] = '\0';
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return -1;
	}
	if (rl.rlim_cur < need) {
		snprintf(note, notelen, "note: the open-file limit (%llu) is below --max-connections (%u) "
		         "plus 256: connections beyond it wait in the kernel's backlog",
		         (unsigned long long)rl.rlim_cur, max_connections);
		return 1;
	}
	return 0;
}
