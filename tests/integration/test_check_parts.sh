#!/usr/bin/env bash
# scripts/check-parts.sh (the parts.check test) catches what it promises to: on a copy of the
# tree, each forbidden arrow and an over-long file makes it fail naming the file, and the clean
# copy passes.  (parts.check itself runs it on the real tree and its object files.)
source "$TESTLIB"
: "${SOURCE_DIR:?}"
check=$SOURCE_DIR/scripts/check-parts.sh

fresh() {
	rm -rf "$TMP/tree"
	mkdir -p "$TMP/tree"
	cp -r "$SOURCE_DIR/src" "$SOURCE_DIR/bench" "$SOURCE_DIR/fuzz" "$TMP/tree/"
}
# expect_violation FILE LINE WHAT: FILE (relative to the copy) gets LINE first; the check must
# fail and say WHAT.
expect_violation() {
	fresh
	{ echo "$2"; cat "$TMP/tree/$1"; } >"$TMP/f" && mv "$TMP/f" "$TMP/tree/$1"
	if bash "$check" "$TMP/tree" >"$TMP/out" 2>&1; then
		fail "check-parts passed with $1 starting '$2'"
	fi
	grep -qF -- "$3" "$TMP/out" || fail "check-parts did not say '$3': $(cat "$TMP/out")"
}

fresh
bash "$check" "$TMP/tree" >"$TMP/out" 2>&1 || fail "the clean tree fails: $(cat "$TMP/out")"
expect_violation src/storage/serve.c '#include "compute/runtime.h"' 'src/storage/serve.c includes "compute/runtime.h": storage may not use compute'
expect_violation src/storage/serve.c '#include "sluice/compute.h"' 'storage may not use compute.h'
expect_violation src/compute/queue.c '#include "storage/storage_int.h"' 'compute may not use storage'
expect_violation src/proto/codec.c '#include "storage/storage_int.h"' 'proto may not use storage'
expect_violation src/proto/codec.c '#include "net/sock.h"' 'proto may not use net'
expect_violation src/log/memlog.c '#include "net/loop.h"' 'log may not use net'
expect_violation src/replica/follow.c '#include "storage/storage_int.h"' 'replica may use only storage/replica_hooks.h'
fresh
seq 1 801 | sed 's|^|// |' >"$TMP/tree/bench/long.c"
if bash "$check" "$TMP/tree" >"$TMP/out" 2>&1; then fail "an 801-line file passed"; fi
grep -q 'bench/long.c has 801 lines' "$TMP/out" || fail "the long file is not named: $(cat "$TMP/out")"
pass
