#!/usr/bin/env bash
# `cmake --install` gives a usable libsluice: the public headers, the shared library exporting
# only the sl_ API, a pkg-config file and a CMake package (find_package(sluice), sluice::sluice).
# The example is built against the install alone (no source tree), once with pkg-config and
# once with CMake, and each build is run against a real sluiced.
source "$TESTLIB"
: "${BUILD_DIR:?}" "${SOURCE_DIR:?}"

prefix="$TMP/prefix"
cmake --install "$BUILD_DIR" --prefix "$prefix" >"$TMP/install.log" || fail "cmake --install failed: $(tail -5 "$TMP/install.log")"
for f in bin/sluiced bin/sluice include/sluice/sluice.h include/sluice/storage.h include/sluice/compute.h \
	lib/libsluice.so lib/libsluice.a lib/pkgconfig/sluice.pc lib/cmake/sluice/sluiceConfig.cmake \
	lib/cmake/sluice/sluiceConfigVersion.cmake lib/systemd/system/sluiced.service \
	share/man/man1/sluiced.1 share/man/man1/sluice.1; do
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

# The same example through find_package(sluice), in a project of its own outside the tree.
mkdir -p "$TMP/consumer"
cat >"$TMP/consumer/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(sluice 0.1 REQUIRED)
find_package(Threads REQUIRED)
add_executable(multi_worker "$SOURCE_DIR/examples/multi_worker.c")
target_link_libraries(multi_worker PRIVATE sluice::sluice Threads::Threads)
EOF
cmake -S "$TMP/consumer" -B "$TMP/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_C_FLAGS="${san[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]}" >"$TMP/cmake.log" 2>&1 ||
	fail "find_package(sluice) failed: $(tail -20 "$TMP/cmake.log")"
cmake --build "$TMP/consumer/build" >>"$TMP/cmake.log" 2>&1 ||
	fail "the example does not build with find_package(sluice): $(tail -20 "$TMP/cmake.log")"
# A version the package does not satisfy is refused.
sed -i 's/find_package(sluice 0.1 REQUIRED)/find_package(sluice 9.0 REQUIRED)/' "$TMP/consumer/CMakeLists.txt"
if cmake -S "$TMP/consumer" -B "$TMP/consumer/build9" -DCMAKE_PREFIX_PATH="$prefix" >"$TMP/cmake9.log" 2>&1; then
	fail "find_package(sluice 9.0) accepted version $(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/sluice.pc")"
fi

start_sluiced --source "c=counter,workers=7,max=2000"
for bin in "$TMP/multi_worker" "$TMP/consumer/build/multi_worker"; do
	timeout 60 "$bin" "$SERVER" c 30 >"$TMP/example.out" || fail "$bin exited with $?"
	grep -q '^2000 updates from c$' "$TMP/example.out" || fail "$bin did not get all 2000 updates: $(cat "$TMP/example.out")"
	[[ $(grep -c 'frontier closed' "$TMP/example.out") -eq 3 ]] || fail "not every worker of $bin saw its frontier close"
done
stop_sluiced
pass
