/*
 * fuzz_handshake.c - libFuzzer target for the server's handshake check (src/storage/security.c):
 * the frames a client sends first, as a storage connection sees them.
 *
 * The first input byte picks a fragment size; the rest is fed through an accumulating buffer
 * in fragments of that size, as a socket would deliver it.  Like a connection before its
 * handshake, the first decoded frame goes through sli_hello_check twice, with authentication
 * on (token FUZZ_TOKEN) and off; frames after an accepted Hello are only decoded.  Checked:
 * the result is one of the codes a server may send, with a message; a frame is accepted with
 * authentication on exactly when it is a Hello with the right magic, version and token, and
 * off exactly when the magic and version are right; a refusal with authentication off is also
 * one with it on; the token is never compared outside its bytes (ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "storage/security.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define FUZZ_MAX_FRAME 4096u
#define FUZZ_TOKEN "fuzz-token"

static sli_auth auth_on, auth_off;

static void check_first(const sli_frame *f)
{
	char msg[200];
	int on = sli_hello_check(&auth_on, f, msg, sizeof(msg));
	CHECK(on == 0 || ((on == SL_EAUTH || on == SL_EPROTO || on == SL_EVERSION) && msg[0] != '\0'));
	int off = sli_hello_check(&auth_off, f, msg, sizeof(msg));
	CHECK(off == 0 || ((off == SL_EPROTO || off == SL_EVERSION) && msg[0] != '\0'));
	int hello_ok = f->type == SLI_HELLO && f->u.hello.magic == SLI_MAGIC &&
	               f->u.hello.version == SLI_PROTO_VERSION;
	CHECK((off == 0) == hello_ok);
	int token_ok = hello_ok && (f->u.hello.flags & SLI_HELLO_TOKEN) &&
	               f->u.hello.token.len == strlen(FUZZ_TOKEN) &&
	               memcmp(f->u.hello.token.ptr, FUZZ_TOKEN, f->u.hello.token.len) == 0;
	CHECK((on == 0) == token_ok);
	if (off != 0)
		CHECK(on != 0);
	if (f->type != SLI_HELLO)
		CHECK(on == SL_EAUTH && off == SL_EPROTO);
	/* the Hello re-encodes to a frame that decodes to the same token */
	if (f->type == SLI_HELLO) {
		sli_buf b;
		sli_frame g;
		sli_buf_init(&b);
		CHECK(sli_frame_encode(&b, f) == 0);
		CHECK(sli_frame_decode(b.ptr, b.len, UINT32_MAX, &g) == (ssize_t)b.len);
		CHECK(g.u.hello.token.len == f->u.hello.token.len);
		CHECK(g.u.hello.token.len == 0 ||
		      memcmp(g.u.hello.token.ptr, f->u.hello.token.ptr, g.u.hello.token.len) == 0);
		sli_buf_fini(&b);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!auth_on.enabled) {
		CHECK(sli_auth_init(&auth_on, FUZZ_TOKEN) == 0);
		CHECK(sli_auth_init(&auth_off, NULL) == 0 && !auth_off.enabled);
	}
	if (size == 0)
		return 0;
	size_t frag = (size_t)data[0] % 64 + 1;
	data++;
	size--;
	uint8_t *buf = malloc(size ? size : 1);
	size_t len = 0, off = 0, fed = 0;
	int frames = 0;
	while (fed < size) {
		size_t n = size - fed < frag ? size - fed : frag;
		memcpy(buf + len, data + fed, n);
		len += n;
		fed += n;
		for (;;) {
			sli_frame f;
			ssize_t r = sli_frame_decode(buf + off, len - off, FUZZ_MAX_FRAME, &f);
			if (r == 0)
				break;
			if (r < 0)
				goto out; /* the connection would end here */
			if (frames++ == 0) {
				check_first(&f);
				char msg[200];
				if (sli_hello_check(&auth_on, &f, msg, sizeof(msg)) != 0)
					goto out; /* refused: Error and close */
			}
			off += (size_t)r;
		}
	}
out:
	free(buf);
	return 0;
}
