#!/usr/bin/env bash
# A standby of one process of a three-process cluster.  The cluster list names it after its
# primary ("A1/S1"), so every client learns it from the map.  The primary of process 1 is
# SIGKILLed for good mid-story: a tail given only process 0's address moves process 1's
# subscriptions to the standby by itself and prints every row exactly once; after `sluice
# promote` the standby takes process 1's share of new ingest batches; the counter's finished
# history of process 1 is served by the standby; the returning old primary is stale and fenced.
# A standby given another cluster list is refused at start.
source "$TESTLIB"

W=6
base=$((20000 + RANDOM % 30000))
A=("127.0.0.2:$base" "127.0.0.3:$base" "127.0.0.4:$base")
S1="127.0.0.5:$base"
LIST="${A[0]},${A[1]}/$S1,${A[2]}"
SPECS=(--source "in=ingest,workers=$W" --source "c=counter,workers=$W,max=20000,keep=500")
PIDS=()
LOGS=()

# wait_listening PID LOG ADDR: waits (bounded) for the "listening on ADDR" line.
wait_listening() {
	local pid=$1 log=$2 addr=$3 k
	for ((k = 0; k < 200; k++)); do
		grep -q "listening on $addr\$" "$log" && return 0
		kill -0 "$pid" 2>/dev/null || fail "sluiced for $addr exited at start: $(cat "$log")"
		sleep 0.05
	done
	fail "sluiced did not listen on $addr: $(cat "$log")"
}

start_process() { # start_process I
	local i=$1 log="$TMP/p$1.$RANDOM.log"
	bg "$SLUICED" --data-dir "$TMP/data$i" --cluster "$LIST" --process "$i" "${SPECS[@]}" 2>"$log"
	PIDS[$i]=$BG_PID
	LOGS[$i]=$log
	wait_listening "$BG_PID" "$log" "${A[$i]}"
}

batch() { # batch I: 100 rows, so every worker of every process gets some
	seq 1 100 | sed "s/^/b$1-r/"
}

for i in 0 1 2; do start_process "$i"; done
# The standby of process 1: same list and process; it listens on S1 (its entry's address
# that is not its primary's) without being told.
S_LOG="$TMP/standby.log"
bg "$SLUICED" --data-dir "$TMP/standby" --cluster "$LIST" --process 1 --standby-of "${A[1]}" 2>"$S_LOG"
S_PID=$BG_PID
wait_listening "$S_PID" "$S_LOG" "$S1"

# A standby given another list than its primary's is refused with one clear line.
rc=0
timeout -k 5 30 "$SLUICED" --data-dir "$TMP/bad" --cluster "${A[0]},${A[1]},${A[2]}/127.0.0.6:$base" \
	--process 2 --standby-of "${A[2]}" --listen "127.0.0.6:$base" 2>"$TMP/bad.err" || rc=$?
[[ $rc -eq 1 ]] || fail "a standby with another cluster list exited with $rc, expected 1: $(cat "$TMP/bad.err")"
grep -q "give it the primary's --cluster and --process" "$TMP/bad.err" || fail "mismatched standby said: $(cat "$TMP/bad.err")"

# The tail knows only process 0's address; process 1's standby comes from the map.
bg timeout -k 5 120 "$SLUICE" tail --server "${A[0]}" --retry-for 60 --consolidate --until 10 in \
	>"$TMP/tail.out" 2>"$TMP/tail.err"
TAIL_PID=$BG_PID

for i in 0 1 2 3 4; do
	t=$(batch "$i" | timeout -k 5 60 "$SLUICE" ingest --server "${A[0]}" in) || fail "ingest $i failed"
	[[ $t == "$i" ]] || fail "batch $i got time $t"
done

# The standby has caught up with process 1 (its workers' uppers come from it: it is the home
# process of a client given its address) for both sources.
SERVER=$S1 SLUICED_PID=$S_PID SLUICED_LOG=$S_LOG
wait_upper in 5
wait_upper c closed

# Process 1's primary dies for good; its standby is promoted.
kill -KILL "${PIDS[1]}"
wait "${PIDS[1]}" 2>/dev/null || true
term=$(timeout -k 5 30 "$SLUICE" promote --server "$S1") || fail "sluice promote failed"
[[ $term == 2 ]] || fail "promote printed term '$term', expected 2"

# New batches through process 2's address: process 1's share goes to the promoted standby.
for i in 5 6 7 8 9; do
	t=$(batch "$i" | timeout -k 5 60 "$SLUICE" ingest --server "${A[2]}" in) || fail "ingest $i after the failover failed"
	[[ $t == "$i" ]] || fail "batch $i got time $t after the failover"
done

# sluice stat given process 0 reaches every process through its map entry: process 1's
# ("A1/S1") answers from the standby now that its primary is gone.
timeout -k 5 60 "$SLUICE" stat --once --server "${A[0]}" >"$TMP/stat" 2>&1 || fail "sluice stat of the cluster failed: $(cat "$TMP/stat")"
grep -q "^cluster of 3 via ${A[0]}: " "$TMP/stat" || fail "no cluster summary: $(cat "$TMP/stat")"
! grep -q "missing" "$TMP/stat" || fail "stat misses a process of the cluster: $(cat "$TMP/stat")"

rc=0
wait "$TAIL_PID" || rc=$?
[[ $rc -eq 0 ]] || fail "the tail across the failover exited with $rc: $(cat "$TMP/tail.err")"
for i in 0 1 2 3 4 5 6 7 8 9; do batch "$i"; done | sed 's/^/ok\t/; s/$/\t1/' | sort >"$TMP/expected"
expect_diff "$TMP/expected" "$TMP/tail.out" "tail through process 0 across process 1's failover"

# Every address of the cluster (the standby's too) now gives the same, for ingest and counter.
seq 19501 20000 | awk '{ printf "ok\t%d\t1\n", $1 }' | sort >"$TMP/expected.c"
for s in "${A[0]}" "$S1" "${A[2]}"; do
	timeout -k 5 60 "$SLUICE" tail --server "$s" --consolidate --until 10 in >"$TMP/in.out" ||
		fail "tail of in through $s failed"
	expect_diff "$TMP/expected" "$TMP/in.out" "tail of in through $s after the failover"
	timeout -k 5 60 "$SLUICE" tail --server "$s" --consolidate c >"$TMP/c.out" ||
		fail "tail of c through $s failed"
	expect_diff "$TMP/expected.c" "$TMP/c.out" "tail of the counter through $s after the failover"
done

# The old primary of process 1 comes back on its data directory: clients keep using the
# promoted standby (higher term), and the standby fences it.
start_process 1
u=$(timeout -k 5 60 "$SLUICE" sources --server "${A[0]}" | awk -F'\t' '$1 == "in" { print $5 }')
[[ $u == 10 ]] || fail "sources through process 0 with the old primary back shows upper '$u', expected 10"
fenced=0
for ((k = 0; k < 100; k++)); do
	rc=0
	timeout -k 5 30 "$SLUICE" sources --server "${A[1]}" >/dev/null 2>"$TMP/fenced.err" || rc=$?
	if [[ $rc -ne 0 ]] && grep -q "superseded by $S1" "$TMP/fenced.err"; then
		fenced=1
		break
	fi
	sleep 0.1
done
[[ $fenced -eq 1 ]] || fail "the old primary of process 1 was not fenced: $(cat "$TMP/fenced.err")"
pass
