#!/usr/bin/env bash
# sluice tail --progress: progress lines strictly increase, no update ever follows a progress
# line that already covered its time, --until stops at the right frontier, and without --until
# the run ends with `progress closed` once the counter reaches max.
source "$TESTLIB"

W=3 N=60 K=5 E=7
start_sluiced --source "p=counter,workers=$W,max=$N,keep=$K,errors=$E,rate=20" \
	--source "fast=counter,workers=2,max=5000" --source "forever=counter,workers=2,rate=20"

# expected_updates FROM UNTIL: every update of p with FROM <= time < UNTIL, as tail prints it.
expected_updates() {
	awk -v from="$1" -v until="$2" -v k="$K" -v e="$E" 'BEGIN {
		for (t = from; t < until; t++) {
			if (t < 1) continue
			printf "ok\t%d\t1\t%d\n", t, t
			if (k > 0 && t > k) printf "ok\t%d\t-1\t%d\n", t, t - k
			if (e > 0 && t % e == 0) printf "err\t%d\t1\ttick %d\n", t, t
		}
	}' | sort
}

# check_progress FILE: progress lines strictly increase, and no update comes after a progress
# line whose frontier is beyond the update's time.
check_progress() {
	awk -F'\t' '
		$1 == "progress" {
			if ($2 == "closed") { closed = 1; next }
			if (closed) { print "progress after closed: " $0; bad = 1 }
			if (seen && $2 + 0 <= last) { print "progress not increasing: " last " then " $2; bad = 1 }
			last = $2 + 0; seen = 1; next
		}
		{
			if (closed) { print "update after progress closed: " $0; bad = 1 }
			if (seen && $2 + 0 < last) { print "update at " $2 " after progress " last; bad = 1 }
		}
		END { exit bad }' "$1" >&2 || fail "progress lines in $1 are inconsistent"
}

# 1. --until 30 while the counter is still running.
sl tail --progress --until 30 p >"$TMP/out1" || fail "tail --until exited with $?"
check_progress "$TMP/out1"
grep -v '^progress' "$TMP/out1" | sort >"$TMP/updates1"
expected_updates 0 30 >"$TMP/expected1"
expect_diff "$TMP/expected1" "$TMP/updates1" "tail --progress --until 30"
[[ $(grep -c '^progress' "$TMP/out1") -ge 2 ]] || fail "expected several progress lines, got: $(grep '^progress' "$TMP/out1" | tr '\n' ' ')"
[[ $(tail -n 1 "$TMP/out1") == "$(printf 'progress\t30')" ]] || fail "last line of tail --until 30 is '$(tail -n 1 "$TMP/out1")'"
! grep -q $'^progress\tclosed' "$TMP/out1" || fail "progress closed printed although --until was reached first"

# 2. No --until: runs until the counter closes at max.
sl tail --progress p >"$TMP/out2" || fail "tail without --until exited with $?"
check_progress "$TMP/out2"
grep -v '^progress' "$TMP/out2" | sort >"$TMP/updates2"
expected_updates 0 $((N + 1)) >"$TMP/expected2"
expect_diff "$TMP/expected2" "$TMP/updates2" "tail --progress (to the end)"
[[ $(tail -n 1 "$TMP/out2") == "$(printf 'progress\tclosed')" ]] || fail "tail did not end with 'progress closed': '$(tail -n 1 "$TMP/out2")'"

# 3. --from and --until together, after the source has closed: a replay.
sl tail --progress --from 20 --until 40 p >"$TMP/out3" || fail "tail --from --until exited with $?"
check_progress "$TMP/out3"
grep -v '^progress' "$TMP/out3" | sort >"$TMP/updates3"
expected_updates 20 40 >"$TMP/expected3"
expect_diff "$TMP/expected3" "$TMP/updates3" "tail --from 20 --until 40"
# The source is closed already, so its frontier jumps from below 40 straight to closed; updates
# at times >= 40 arrived, though, so --until was reached before the source closed.
[[ $(tail -n 1 "$TMP/out3") == "$(printf 'progress\t40')" ]] || fail "last line of tail --from 20 --until 40 is '$(tail -n 1 "$TMP/out3")'"

# 4. --until beyond max: the source closes first, so `progress closed` is printed.
sl tail --progress --until 1000 p >"$TMP/out4" || fail "tail --until 1000 exited with $?"
[[ $(tail -n 1 "$TMP/out4") == "$(printf 'progress\tclosed')" ]] || fail "tail --until past max did not end with 'progress closed'"
[[ $(grep -vc '^progress' "$TMP/out4") -eq $(expected_updates 0 $((N + 1)) | wc -l) ]] || fail "tail --until 1000 printed the wrong number of updates"

# 5. A fast counter (batched ticks): still consistent.
sl tail --progress fast >"$TMP/out5" || fail "tail fast exited with $?"
check_progress "$TMP/out5"
[[ $(grep -c $'^ok\t' "$TMP/out5") -eq 5000 ]] || fail "fast counter: expected 5000 ok lines, got $(grep -c $'^ok\t' "$TMP/out5")"
[[ $(tail -n 1 "$TMP/out5") == "$(printf 'progress\tclosed')" ]] || fail "fast counter: no 'progress closed' at the end"
sl tail --progress --until 100 fast >"$TMP/out6" || fail "tail --until 100 fast exited with $?"
[[ $(tail -n 1 "$TMP/out6") == "$(printf 'progress\t100')" ]] || fail "fast counter, --until 100: last line '$(tail -n 1 "$TMP/out6")'"
[[ $(grep -c $'^ok\t' "$TMP/out6") -eq 99 ]] || fail "fast counter, --until 100: expected 99 ok lines"

# 6. SIGTERM and SIGINT end a tail that has no --until: exit 0, and with --consolidate the
#    consolidated result of what arrived is still printed.
for sig in TERM INT; do
	bg "$SLUICE" tail --server "$SERVER" --consolidate forever >"$TMP/sig.$sig"
	tail_pid=$BG_PID
	sleep 1.5
	kill -"$sig" "$tail_pid"
	rc=0
	for ((i = 0; i < 100; i++)); do kill -0 "$tail_pid" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$tail_pid" 2>/dev/null && fail "tail did not exit within 5 s of SIG$sig"
	wait "$tail_pid" || rc=$?
	[[ $rc -eq 0 ]] || fail "tail exited with $rc on SIG$sig"
	n=$(wc -l <"$TMP/sig.$sig")
	[[ $n -ge 2 ]] || fail "tail --consolidate printed $n lines on SIG$sig"
	seq 1 "$n" | awk '{ printf "ok\t%s\t1\n", $1 }' | sort >"$TMP/sig.expected"
	expect_diff "$TMP/sig.expected" "$TMP/sig.$sig" "consolidated output on SIG$sig"
done

stop_sluiced
pass
