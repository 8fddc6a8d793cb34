#!/usr/bin/env bash
# Compaction: a counter with keep=1000 running 10^6 ticks with --retain 1000 keeps its data
# directory under a bound; a live subscriber that started first still receives every update at
# its own time (its read hold keeps `since` behind it); a fresh tail --consolidate, and one
# resuming from before `since` (served the snapshot), are exactly right; so is one after a
# restart on the compacted directory.
source "$TESTLIB"

N=1000000 K=1000
SPEC="c=counter,max=$N,keep=$K,rate=125000"
export SLUICED_DATA_DIR="$TMP/data"
ARGS=(--segment-size 131072 --retain 1000)
start_sluiced "${ARGS[@]}" --source "$SPEC"

# The live subscriber, from the very start.
bg timeout -k 5 120 "$SLUICE" tail --server "$SERVER" --until $((N + 1)) c >"$TMP/live"
live_pid=$BG_PID

# Disk use while it runs (bounded: at most 60 s, and only while sluiced lives).
max_kb=0
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
	kill -0 "$SLUICED_PID" 2>/dev/null || fail "sluiced died: $(tail -n 20 "$SLUICED_LOG")"
	# Segments may vanish while du counts them (compaction removes them): ignore that.
	kb=$( (du -sk "$SLUICED_DATA_DIR" 2>/dev/null || true) | cut -f1)
	[[ -n $kb ]] || continue
	((kb > max_kb)) && max_kb=$kb
	[[ $(source_upper c) == closed ]] && break
	sleep 0.1
done
[[ $(source_upper c) == closed ]] || fail "the counter did not finish within 60 s"
echo "largest data directory while running: ${max_kb} KiB"
# Without compaction the log of 2*10^6 updates takes over 50 MiB; the bound leaves room for
# the live subscriber (whose read hold keeps since behind it) to lag under a sanitizer.
((max_kb < 24576)) || fail "data directory reached ${max_kb} KiB: compaction does not bound it"

wait "$live_pid" || fail "the live tail exited with $?"
{
	seq 1 "$N" | awk '{ printf "ok\t%d\t1\t%d\n", $1, $1 }'
	seq $((K + 1)) "$N" | awk -v k=$K '{ printf "ok\t%d\t-1\t%d\n", $1, $1 - k }'
} | sort >"$TMP/live.expected"
sort "$TMP/live" >"$TMP/live.sorted"
expect_diff "$TMP/live.expected" "$TMP/live.sorted" "the live subscriber's stream"

seq $((N - K + 1)) "$N" | awk '{ printf "ok\t%d\t1\n", $1 }' | sort >"$TMP/expected"
sl tail --consolidate --until $((N + 1)) c >"$TMP/out" || fail "tail --consolidate failed"
expect_diff "$TMP/expected" "$TMP/out" "a fresh tail --consolidate after compaction"
sl tail --consolidate --from 5 --until $((N + 1)) c >"$TMP/out5" || fail "tail --from 5 failed"
expect_diff "$TMP/expected" "$TMP/out5" "a tail from before since (served the snapshot)"
stop_sluiced

start_sluiced "${ARGS[@]}" --source "$SPEC"
sl tail --consolidate --until $((N + 1)) c >"$TMP/out.restart" || fail "tail after restart failed"
expect_diff "$TMP/expected" "$TMP/out.restart" "tail --consolidate after a restart on compacted data"
stop_sluiced
pass
