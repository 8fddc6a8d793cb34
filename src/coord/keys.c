/*
 * keys.c - the key layout of sluice's state in etcd: /sluice/<cluster-id>/process/<i>/<leaf>
 * (leaves: "leader", "isr"; see election.h for what each holds).
 */
#include <stdio.h>
#include <string.h>

#include "coord/election.h"
#include "coord/coord_int.h"

/* A cluster id is one path component of plain characters, so keys of different clusters never
 * share a prefix. */
static int cluster_ok(const char *c)
{
	size_t n = c ? strlen(c) : 0;
	if (n == 0 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = c[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

int sli_coord_key(char *buf, size_t cap, const char *cluster, uint32_t process, const char *leaf)
{
	int n;
	if (!cluster_ok(cluster)) {
		sli_coord_set_error("cluster id '%s' is not 1 to 128 of [A-Za-z0-9._-]",
		                    cluster ? cluster : "(null)");
		return SL_EARG;
	}
	n = snprintf(buf, cap, "/sluice/%s/process/%u/%s", cluster, process, leaf ? leaf : "");
	if (n < 0 || (size_t)n >= cap) {
		sli_coord_set_error("etcd key for cluster '%s' too long", cluster);
		return SL_EARG;
	}
	return 0;
}
