#!/usr/bin/env bash
# test.sh - everything CI runs: installs the dependencies, builds and tests sluice twice (a
# normal build and an ASan/UBSan build, ctest in each), then builds the libFuzzer targets with
# clang and runs each for a bounded time.  Exits non-zero on any failure.
#
# Between them: the C integration tests under valgrind memcheck, and static analysis (cppcheck
# and clang-tidy, configured by .cppcheck and .clang-tidy) of the normal build's sources.
#
# Environment: JOBS (parallel build jobs, default nproc), FUZZ_SECONDS (per fuzz target,
# default 60), SKIP_ASAN=1 / SKIP_TSAN=1 / SKIP_VALGRIND=1 / SKIP_ANALYSIS=1 / SKIP_FUZZ=1 to
# leave a stage out when iterating.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-$(nproc)}
B=${BUILD_PREFIX:-build} # build dirs: $B, $B-asan, $B-fuzz
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
passed=0
failed=0
status=0

./scripts/install-deps.sh

# run_ctest DIR: runs ctest in DIR and adds its counts to the totals.
run_ctest() {
	local dir=$1 rc=0 line
	shift
	(cd "$dir" && ctest --output-on-failure --timeout 900 -j "$JOBS" "$@") 2>&1 | tee "$dir/ctest.log" || rc=$?
	line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$dir/ctest.log" | tail -n 1 || true)
	if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
		failed=$((failed + BASH_REMATCH[1]))
		passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
	fi
	if [[ $rc -ne 0 || -z $line ]]; then
		echo "test.sh: ctest failed in $dir" >&2
		status=1
	fi
}

echo "==== normal build"
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$B" -j "$JOBS"
run_ctest "$B"

if [[ ${SKIP_VALGRIND:-0} != 1 ]]; then
	# memcheck on the in-process integration tests of the normal build: uninitialised reads,
	# invalid accesses and definite leaks that the ASan build's different allocator and
	# optimisation level can miss.  Possible leaks are not errors: threads' TLS blocks show up
	# as possibly lost.  itest_hostile skips its RSS check (valgrind's allocator is not
	# malloc's); each binary takes under a minute and is bounded by timeout.
	echo "==== valgrind memcheck (integration tests)"
	for f in tests/integration/itest_*.c; do
		t=$(basename "${f%.c}")
		log=$B/valgrind-$t.log
		start=$SECONDS
		if HOSTILE_NO_RSS=1 timeout -k 10 900 valgrind --error-exitcode=99 \
			--leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
			-q "$B/tests/$t" >"$log" 2>&1; then
			echo "---- $t: passed under valgrind ($((SECONDS - start)) s)"
			passed=$((passed + 1))
		else
			tail -n 80 "$log" >&2
			echo "test.sh: $t failed under valgrind (log: $log)" >&2
			failed=$((failed + 1))
			status=1
		fi
	done
fi

if [[ ${SKIP_ANALYSIS:-0} != 1 ]]; then
	# Static analysis of what the normal build compiles (its compile_commands.json).  Checks
	# are chosen in .clang-tidy (with the reason for each one left out) and .cppcheck; a
	# finding fails the stage.  Justified exceptions are inline, next to the code.
	echo "==== static analysis (cppcheck, clang-tidy)"
	# shellcheck disable=SC2046
	if cppcheck --project="$B/compile_commands.json" $(grep -v '^#' .cppcheck) -j "$JOBS" \
		--error-exitcode=1 -q >"$B/cppcheck.log" 2>&1; then
		echo "---- cppcheck: clean"
		passed=$((passed + 1))
	else
		cat "$B/cppcheck.log" >&2
		echo "test.sh: cppcheck found problems (log: $B/cppcheck.log)" >&2
		failed=$((failed + 1))
		status=1
	fi
	# src/ only: the shipped library and programs (tests use rand, system and the like on
	# purpose).  run-clang-tidy exits non-zero when any file has a finding (WarningsAsErrors).
	if run-clang-tidy -p "$B" -j "$JOBS" -quiet "$PWD/src/" >"$B/clang-tidy.log" 2>&1; then
		echo "---- clang-tidy: clean"
		passed=$((passed + 1))
	else
		grep -E '(warning|error): ' "$B/clang-tidy.log" | sort -u >&2 || tail -n 40 "$B/clang-tidy.log" >&2
		echo "test.sh: clang-tidy found problems (log: $B/clang-tidy.log)" >&2
		failed=$((failed + 1))
		status=1
	fi
fi

if [[ ${SKIP_ASAN:-0} != 1 ]]; then
	echo "==== ASan/UBSan build"
	cmake -S . -B "$B-asan" -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON
	cmake --build "$B-asan" -j "$JOBS"
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	run_ctest "$B-asan"
fi

if [[ ${SKIP_TSAN:-0} != 1 ]]; then
	# Where threads meet (the runtimes' queues, wakeups and logs): the in-process integration
	# tests under ThreadSanitizer.
	echo "==== ThreadSanitizer build (integration tests)"
	cmake -S . -B "$B-tsan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-fsanitize=thread -O1 -g" \
		-DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread"
	itests=()
	for f in tests/integration/itest_*.c; do
		itests+=("$(basename "${f%.c}")")
	done
	cmake --build "$B-tsan" -j "$JOBS" --target "${itests[@]}"
	TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1} run_ctest "$B-tsan" -R '^integration\.'
fi

if [[ ${SKIP_FUZZ:-0} != 1 ]]; then
	echo "==== libFuzzer (clang, ${FUZZ_SECONDS}s per target)"
	shopt -s nullglob
	targets=()
	for f in fuzz/fuzz_*.c; do
		targets+=("$(basename "${f%.c}")")
	done
	if [[ ${#targets[@]} -eq 0 ]]; then
		echo "test.sh: no fuzz targets in fuzz/"
	else
		# The library itself is instrumented too (fuzzer-no-link), or the fuzzer would see
		# coverage of the harness only.
		CC=clang cmake -S . -B "$B-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON \
			-DSLUICE_TESTS=OFF -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined"
		cmake --build "$B-fuzz" -j "$JOBS" --target "${targets[@]}"
		for t in "${targets[@]}"; do
			corpus=$PWD/$B-fuzz/corpus-$t
			mkdir -p "$corpus"
			seeds=()
			if [[ -d fuzz/corpus/$t ]]; then
				seeds=("$PWD/fuzz/corpus/$t") # each target's seeds: fuzz/corpus/<target>/
			fi
			echo "---- $t"
			if (cd "$B-fuzz" && ASAN_OPTIONS=detect_leaks=1 "./fuzz/$t" -max_total_time="$FUZZ_SECONDS" \
				-print_final_stats=1 "$corpus" "${seeds[@]}") >"$B-fuzz/$t.log" 2>&1; then
				tail -n 12 "$B-fuzz/$t.log"
				passed=$((passed + 1))
			else
				tail -n 60 "$B-fuzz/$t.log" >&2
				echo "test.sh: fuzz target $t failed (log: $B-fuzz/$t.log)" >&2
				failed=$((failed + 1))
				status=1
			fi
		done
	fi
fi

echo "tests: $passed passed, $failed failed"
exit "$status"
