/*
 * etcd_json.c - the JSON shapes of etcd's gateway: base64 for keys and values (protobuf
 * bytes), decimal strings for int64s, and the key-value objects of a range answer.
 *
 * Pure functions over jansson values: no I/O and no error text.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coord/coord_int.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

json_t *sli_json_b64(const void *p, size_t n)
{
	const uint8_t *in = p;
	size_t cap = (n + 2) / 3 * 4;
	char *s = malloc(cap + 1);
	size_t o = 0;
	json_t *j;

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		s[o++] = b64_alphabet[(v >> 18) & 63];
		s[o++] = b64_alphabet[(v >> 12) & 63];
		s[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		s[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
	}
	s[o] = '\0';
	j = json_stringn(s, o);
	free(s);
	return j;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-') /* '-' and '_': the URL-safe alphabet, accepted too */
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

int sli_b64_decode(const char *s, uint8_t **out, size_t *n)
{
	size_t len = strlen(s);
	uint8_t *buf;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return SL_EPROTO;
	if ((buf = malloc(len / 4 * 3 + 3 + 1)) == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(s[i]);
		if (v < 0) {
			free(buf);
			return SL_EPROTO;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	buf[o] = '\0';
	*out = buf;
	*n = o;
	return 0;
}

json_t *sli_json_i64(int64_t v)
{
	char s[24];
	int len = snprintf(s, sizeof(s), "%lld", (long long)v);
	return json_stringn(s, (size_t)len);
}

int sli_json_get_i64(const json_t *obj, const char *name, int64_t *v)
{
	const json_t *m = json_object_get(obj, name);
	const char *s;
	char *end;
	long long x;

	if (m == NULL || json_is_null(m)) {
		*v = 0;
		return 0;
	}
	if (json_is_integer(m)) {
		*v = json_integer_value(m);
		return 0;
	}
	if (!json_is_string(m))
		return SL_EPROTO;
	s = json_string_value(m);
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return SL_EPROTO;
	*v = x;
	return 0;
}

/* Decodes obj's base64 member name (absent: empty, as protobuf leaves out empty bytes). */
static int get_bytes(const json_t *obj, const char *name, uint8_t **out, size_t *n)
{
	const json_t *m = json_object_get(obj, name);
	if (m == NULL)
		return sli_b64_decode("", out, n);
	if (!json_is_string(m))
		return SL_EPROTO;
	return sli_b64_decode(json_string_value(m), out, n);
}

int sli_etcd_kv_parse(const json_t *o, sli_etcd_kv *kv)
{
	sli_etcd_kv r;
	uint8_t *key = NULL;
	int rc;

	memset(&r, 0, sizeof(r));
	if (!json_is_object(o))
		return SL_EPROTO;
	if ((rc = sli_json_get_i64(o, "create_revision", &r.create_revision)) != 0 ||
	    (rc = sli_json_get_i64(o, "mod_revision", &r.mod_revision)) != 0 ||
	    (rc = sli_json_get_i64(o, "version", &r.version)) != 0 ||
	    (rc = sli_json_get_i64(o, "lease", &r.lease)) != 0)
		return rc;
	if ((rc = get_bytes(o, "key", &key, &r.key_len)) != 0)
		return rc;
	r.key = (char *)key;
	if ((rc = get_bytes(o, "value", &r.value, &r.value_len)) != 0) {
		free(r.key);
		return rc;
	}
	*kv = r;
	return 0;
}
