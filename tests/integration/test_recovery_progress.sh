#!/usr/bin/env bash
# sluiced says how the recovery of a large data directory progresses: which worker and which
# segment file, in order, before it listens; at most once a second (SLUICE_PROGRESS_INTERVAL_MS,
# set to 0 here so that every segment is said), and nothing for a recovery faster than that.
source "$TESTLIB"

export SLUICED_DATA_DIR=$TMP/data
start_sluiced --segment-size 131072 --source "c=counter,workers=2,max=40000"
wait_upper c closed
stop_sluiced
segs0=$(find "$SLUICED_DATA_DIR/sources/c/0/ok" -name '*.seg' | wc -l)
segs1=$(find "$SLUICED_DATA_DIR/sources/c/1/ok" -name '*.seg' | wc -l)
((segs0 >= 3 && segs1 >= 3)) || fail "the counter wrote too few segments to see progress ($segs0, $segs1): $(ls "$SLUICED_DATA_DIR/sources/c/0/ok")"

SLUICE_PROGRESS_INTERVAL_MS=0 start_sluiced --segment-size 131072 --source "c=counter,workers=2,max=40000"
stop_sluiced
sed -n 's/^sluiced: recovering source c: //p' "$SLUICED_LOG" >"$TMP/progress"
# Worker 1's ok log, then its err log (one segment), then worker 2's.
{
	for ((i = 1; i <= segs0; i++)); do echo "worker 1 of 2, segment $i of $segs0"; done
	echo "worker 1 of 2, segment 1 of 1"
	for ((i = 1; i <= segs1; i++)); do echo "worker 2 of 2, segment $i of $segs1"; done
	echo "worker 2 of 2, segment 1 of 1"
} >"$TMP/want"
expect_diff "$TMP/want" "$TMP/progress" "recovery progress lines"
last=$(grep -n 'recovering source' "$SLUICED_LOG" | tail -1 | cut -d: -f1)
listening=$(grep -n 'listening on' "$SLUICED_LOG" | cut -d: -f1)
((last < listening)) || fail "progress said after listening: $(cat "$SLUICED_LOG")"

# At the default interval a recovery this small says nothing.
start_sluiced --segment-size 131072 --source "c=counter,workers=2,max=40000"
stop_sluiced
! grep -q 'recovering source' "$SLUICED_LOG" || fail "a sub-second recovery logged progress: $(cat "$SLUICED_LOG")"
pass
