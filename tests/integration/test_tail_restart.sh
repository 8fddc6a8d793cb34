#!/usr/bin/env bash
# `sluice tail` across storage restarts: sluiced is killed with SIGKILL three times at random
# moments while two tails follow it, and restarted on the same address and data directory.
# The tails reconnect by themselves and print exactly what an undisturbed run prints: the same
# consolidated result, the same multiset of update lines, progress lines strictly increasing,
# and no update printed after a progress line that had already passed its time.
source "$TESTLIB"

N=200000 K=5000 W=4
SPEC="c=counter,workers=$W,max=$N,keep=$K,rate=60000"
export SLUICED_DATA_DIR="$TMP/data"
start_sluiced --source "$SPEC"
port=${SERVER##*:}

bg timeout -k 5 180 "$SLUICE" tail --server "$SERVER" --retry-for 60 --consolidate --until $((N + 1)) c >"$TMP/cons"
cons_pid=$BG_PID
bg timeout -k 5 180 "$SLUICE" tail --server "$SERVER" --retry-for 60 --progress --until $((N + 1)) c >"$TMP/prog"
prog_pid=$BG_PID

for kill_no in 1 2 3; do
	sleep "0.$((RANDOM % 6 + 3))"
	u=$(source_upper c)
	[[ $u != closed ]] || fail "the counter finished before kill $kill_no: make it slower"
	kill -KILL "$SLUICED_PID"
	wait "$SLUICED_PID" 2>/dev/null || true
	echo "kill $kill_no at upper $u"
	start_sluiced --listen "127.0.0.1:$port" --source "$SPEC"
done

wait "$cons_pid" || fail "tail --consolidate exited with $?"
wait "$prog_pid" || fail "tail --progress exited with $?"

seq $((N - K + 1)) "$N" | awk '{ printf "ok\t%d\t1\n", $1 }' | sort >"$TMP/cons.expected"
expect_diff "$TMP/cons.expected" "$TMP/cons" "tail --consolidate across three SIGKILLs"

{
	seq 1 "$N" | awk '{ printf "ok\t%d\t1\t%d\n", $1, $1 }'
	seq $((K + 1)) "$N" | awk -v k=$K '{ printf "ok\t%d\t-1\t%d\n", $1, $1 - k }'
} | sort >"$TMP/updates.expected"
grep -v '^progress' "$TMP/prog" | sort >"$TMP/updates"
expect_diff "$TMP/updates.expected" "$TMP/updates" "update lines of tail --progress across three SIGKILLs"

# The counter closes right after tick N, so the last line is `progress closed` (as undisturbed).
awk -F'\t' '
	closed { print "line " NR " after progress closed"; bad = 1; exit }
	$1 == "progress" && $2 == "closed" { closed = 1; next }
	$1 == "progress" {
		if ($2 + 0 <= last) { print "progress not increasing at line " NR ": " $0; bad = 1; exit }
		last = $2 + 0; next
	}
	$2 + 0 < last { print "line " NR " is at time " $2 " after progress " last; bad = 1; exit }
	END { if (!bad && !closed) { print "no progress closed at the end"; bad = 1 } exit bad }
' "$TMP/prog" || fail "progress lines out of order"
echo "progress lines: $(grep -c '^progress' "$TMP/prog")"
stop_sluiced
pass
