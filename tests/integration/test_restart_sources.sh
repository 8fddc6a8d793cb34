#!/usr/bin/env bash
# Every source continues from its durable upper after a SIGKILL: the file source from the
# offset it remembered (each line exactly one row, however often sluiced dies), the ingest
# source with every acknowledged batch present.
source "$TESTLIB"

export SLUICED_DATA_DIR="$TMP/data"
input="$TMP/input.txt"
SPECS=(--source "f=file,path=$input" --source "in=ingest,workers=2")

seq 1 20000 | sed 's/^/line-/' >"$input"
start_sluiced "${SPECS[@]}"
wait_upper f 1
t1=$(printf 'a\nb\nc\n' | sl ingest in) || fail "first ingest failed"
kill -KILL "$SLUICED_PID"
wait "$SLUICED_PID" 2>/dev/null || true

# More lines while it is down, then a restart and a kill while it reads a large append.
seq 20001 30000 | sed 's/^/line-/' >>"$input"
start_sluiced "${SPECS[@]}"
t2=$(printf 'd\ne\n' | sl ingest in) || fail "second ingest failed"
seq 30001 400000 | sed 's/^/line-/' >>"$input"
sleep 0.05
kill -KILL "$SLUICED_PID"
wait "$SLUICED_PID" 2>/dev/null || true

start_sluiced "${SPECS[@]}"
# Wait (bounded) until every line was read: the upper stops moving once the file is consumed.
prev= cur=
for ((i = 0; i < 100; i++)); do
	cur=$(sl tail --consolidate --until "$(source_upper f)" f | wc -l)
	[[ $cur -eq 400000 ]] && break
	sleep 0.2
done
upper=$(source_upper f)
sl tail --consolidate --until "$upper" f | cut -f2- >"$TMP/rows"
seq 1 400000 | sed 's/^/line-/' | sort | sed 's/$/\t1/' >"$TMP/expected"
expect_diff "$TMP/expected" "$TMP/rows" "file rows after two SIGKILLs (each line once)"

sl tail --consolidate --until $((t2 + 1)) in | cut -f2- >"$TMP/ingested"
printf 'a\t1\nb\t1\nc\t1\nd\t1\ne\t1\n' | expect_diff /dev/stdin "$TMP/ingested" "acknowledged ingest batches after SIGKILLs"
[[ $t2 -gt $t1 ]] || fail "the batch after the restart got time $t2, not after $t1"
stop_sluiced
pass
