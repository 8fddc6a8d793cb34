/*
 * statefile.c - where a source continues after a restart, shared by the file and postgres
 * sources.
 *
 * DATA/sources/NAME/FILE holds two lines, the previous entry and the newest, each "upper v1
 * [v2...]": what the source had read when every worker's upper was `upper`.  A source writes
 * the new entry before its workers advance to that upper, so whichever upper is durable after a
 * crash (the new one, or the previous one when the advance did not make it) has an entry.  The
 * file is replaced atomically by a rename.  See sources.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sources/sources.h"

int sli_statefile_init(sli_statefile *s, sl_storage *st, const char *source, const char *file,
                       size_t nvals)
{
	const char *data = sl_storage_data_dir(st);
	size_t n;

	memset(s, 0, sizeof(*s));
	s->file = file;
	s->nvals = nvals;
	if (data == NULL)
		return 0;
	n = strlen(data) + strlen(source) + 16;
	if ((s->dir = malloc(n)) == NULL)
		return SL_ENOMEM;
	snprintf(s->dir, n, "%s/sources/%s", data, source);
	return 0;
}

void sli_statefile_fini(sli_statefile *s)
{
	free(s->dir);
	s->dir = NULL;
}

int sli_statefile_write(sli_statefile *s, const uint64_t *entry)
{
	char tmp[4200], path[4200], text[2 * SLI_STATEFILE_MAX_VALS * 21 + 2];
	size_t n = 0;
	int fd, rc;

	if (s->dir == NULL)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", s->dir, s->file);
	snprintf(path, sizeof(path), "%s/%s", s->dir, s->file);
	for (int e = 0; e < 2; e++) {
		const uint64_t *v = e == 0 ? s->prev : entry;

		for (size_t i = 0; i < s->nvals; i++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%" PRIu64 "%c", v[i],
			                      i + 1 < s->nvals ? ' ' : '\n');
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		return -errno;
	rc = write(fd, text, n) == (ssize_t)n ? 0 : (errno ? -errno : SL_EIO);
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc == 0)
		memcpy(s->prev, entry, s->nvals * sizeof(*entry));
	return rc;
}

int sli_statefile_resume(sli_statefile *s, uint64_t upper, uint64_t *entry)
{
	char path[4200];
	uint64_t e[2][SLI_STATEFILE_MAX_VALS] = {{0}};
	FILE *fp;
	int ok = 1;

	memset(entry, 0, s->nvals * sizeof(*entry));
	if (upper == 0 || s->dir == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", s->dir, s->file);
	if ((fp = fopen(path, "r")) == NULL)
		return SL_EIO;
	for (int i = 0; i < 2 && ok; i++)
		for (size_t j = 0; j < s->nvals && ok; j++)
			ok = fscanf(fp, "%" SCNu64, &e[i][j]) == 1;
	fclose(fp);
	if (!ok)
		return SL_EIO;
	for (int i = 1; i >= 0; i--) {
		if (e[i][0] == upper) {
			memcpy(entry, e[i], s->nvals * sizeof(*entry));
			memcpy(s->prev, e[i], s->nvals * sizeof(*entry));
			return 0;
		}
	}
	return SL_EIO;
}
