#!/usr/bin/env bash
# `cmake --install` gives a usable libsluice: the public headers, the shared library exporting
# only the sl_ API, and a pkg-config file.  The example is built against the install alone
# (pkg-config, no source tree) and run against a real sluiced.
source "$TESTLIB"
: "${BUILD_DIR:?}" "${SOURCE_DIR:?}"

prefix="$TMP/prefix"
cmake --install "$BUILD_DIR" --prefix "$prefix" >"$TMP/install.log" || fail "cmake --install failed: $(tail -5 "$TMP/install.log")"
for f in bin/sluiced bin/sluice include/sluice/sluice.h include/sluice/storage.h include/sluice/compute.h \
	lib/libsluice.so lib/libsluice.a lib/pkgconfig/sluice.pc share/man/man1/sluiced.1 share/man/man1/sluice.1; do
	[[ -e $prefix/$f ]] || fail "not installed: $f"
done
# Only the public API is exported from the shared library.
if nm -D --defined-only "$prefix/lib/libsluice.so" | awk '$2 == "T" { print $3 }' | grep -v '^sl_' >&2; then
	fail "libsluice.so exports symbols outside the sl_ API (above)"
fi

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs sluice) || fail "pkg-config does not know sluice"
# A sanitizer build's library needs the sanitizer runtime in the program too.
san=()
nm -D "$prefix/lib/libsluice.so" >"$TMP/symbols"
if grep -q '__asan_' "$TMP/symbols"; then
	san=(-fsanitize=address,undefined)
fi
cc "${san[@]}" -o "$TMP/multi_worker" "$SOURCE_DIR/examples/multi_worker.c" $flags -lpthread \
	-Wl,-rpath,"$prefix/lib" 2>"$TMP/cc.log" || fail "the example does not build against the install: $(cat "$TMP/cc.log")"

start_sluiced --source "c=counter,workers=7,max=2000"
timeout 60 "$TMP/multi_worker" "$SERVER" c 30 >"$TMP/example.out" || fail "the example exited with $?"
grep -q '^2000 updates from c$' "$TMP/example.out" || fail "the example did not get all 2000 updates: $(cat "$TMP/example.out")"
[[ $(grep -c 'frontier closed' "$TMP/example.out") -eq 3 ]] || fail "not every example worker saw its frontier close"
stop_sluiced
pass
