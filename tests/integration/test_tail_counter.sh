#!/usr/bin/env bash
# sluice tail --consolidate --until on a 4-worker counter with retractions and errors: the
# consolidated result must be exactly what the counter's definition says, computed here
# independently with seq/awk/sort.
source "$TESTLIB"

N=100000 K=1000 E=97
start_sluiced --source "c=counter,workers=4,max=$N,keep=$K,errors=$E"

sl tail --consolidate --until $((N + 1)) c >"$TMP/out" || fail "sluice tail exited with $?"

{
	seq $((N - K + 1)) "$N" | awk '{ printf "ok\t%s\t1\n", $1 }' | sort
	awk -v n="$N" -v e="$E" 'BEGIN { for (k = e; k <= n; k += e) printf "err\ttick %d\t1\n", k }' | sort
} >"$TMP/expected"

expect_diff "$TMP/expected" "$TMP/out" "tail --consolidate"

# With --from only the updates at times >= 99500 count: ticks 99500..100000 insert their own
# rows and retract the rows 98500..99000 inserted K ticks earlier.
sl tail --consolidate --from 99500 --until $((N + 1)) c >"$TMP/out2" || fail "tail --from exited with $?"
{
	{ seq 98500 99000 | awk '{ printf "%s\t-1\n", $1 }'; seq 99500 "$N" | awk '{ printf "%s\t1\n", $1 }'; } |
		sort | awk '{ printf "ok\t%s\n", $0 }'
	awk -v n="$N" -v e="$E" 'BEGIN { for (k = e; k <= n; k += e) if (k >= 99500) printf "err\ttick %d\t1\n", k }' | sort
} >"$TMP/expected2"
expect_diff "$TMP/expected2" "$TMP/out2" "tail --consolidate --from"

stop_sluiced
pass
