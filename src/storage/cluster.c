/*
 * cluster.c - this process's place in a storage cluster: the process list it is given
 * (sl_storage_set_cluster) and the ClusterMap answer that tells a client every process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"

SL_API int sl_storage_set_cluster(sl_storage *st, const char *const *addrs, uint32_t n,
                                  uint32_t process, uint64_t fingerprint)
{
	if (st == NULL || n == 0 || process >= n || addrs == NULL || st->nsources > 0)
		return SL_EARG;
	char **copy = calloc(n, sizeof(*copy));
	if (copy == NULL)
		return SL_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		if (addrs[i] == NULL || (copy[i] = strdup(addrs[i])) == NULL) {
			int rc = addrs[i] == NULL ? SL_EARG : SL_ENOMEM;
			while (i-- > 0)
				free(copy[i]);
			free(copy);
			return rc;
		}
	}
	/* A second call replaces the first list. */
	for (uint32_t i = 0; st->cluster != NULL && i < st->cluster_size; i++)
		free(st->cluster[i]);
	free(st->cluster);
	st->cluster = copy;
	st->cluster_size = n;
	st->process = process;
	st->fingerprint = fingerprint;
	return 0;
}

int sli_encode_cluster(sl_storage *st, sli_buf *b)
{
	sli_buf addrs;
	char own[160];
	int rc = 0;
	sli_buf_init(&addrs);
	uint32_t n = st->cluster ? st->cluster_size : 1;
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		const char *a = st->cluster ? st->cluster[i] : own;
		if (st->cluster == NULL) {
			/* A cluster of one: its address, with the port it really has. */
			const char *colon = strrchr(st->listen, ':');
			snprintf(own, sizeof(own), "%.*s:%d", colon ? (int)(colon - st->listen) : 0, st->listen,
			         st->port);
		}
		size_t len = strlen(a);
		if ((rc = sli_buf_reserve(&addrs, 4 + len)) == 0) {
			sli_set_u32(addrs.ptr + addrs.len, (uint32_t)len);
			memcpy(addrs.ptr + addrs.len + 4, a, len);
			addrs.len += 4 + len;
		}
	}
	if (rc == 0) {
		sli_frame f = {.type = SLI_CLUSTER};
		f.u.cluster.fingerprint = st->fingerprint;
		f.u.cluster.term = atomic_load(&st->term);
		f.u.cluster.process = st->cluster ? st->process : 0;
		f.u.cluster.count = n;
		f.u.cluster.addrs = (sl_bytes){addrs.ptr, addrs.len};
		rc = sli_frame_encode(b, &f);
	}
	sli_buf_fini(&addrs);
	return rc;
}
