#!/usr/bin/env bash
# sluiced killed with SIGKILL three times at random moments and restarted on the same data
# directory serves exactly what an undisturbed run serves: the counter continues from its
# durable upper, and nothing published before a kill is lost or doubled.
source "$TESTLIB"

SPEC="c=counter,workers=4,max=200000,keep=5000"

# The undisturbed run.
start_sluiced --source "$SPEC"
sl tail --consolidate --until 200001 c >"$TMP/expected" || fail "undisturbed tail exited with $?"
sl tail --progress --until 200001 c >"$TMP/expected.progress" || fail "undisturbed tail --progress failed"
stop_sluiced
[[ $(wc -l <"$TMP/expected") -eq 5000 ]] || fail "undisturbed run printed $(wc -l <"$TMP/expected") rows, expected 5000"

# The disturbed run: paced so that the kills land mid-stream.
export SLUICED_DATA_DIR="$TMP/disturbed"
uppers=()
for kill_no in 1 2 3; do
	start_sluiced --source "$SPEC,rate=100000"
	sleep "0.$((RANDOM % 5 + 2))"
	u=$(source_upper c)
	kill -KILL "$SLUICED_PID"
	wait "$SLUICED_PID" 2>/dev/null || true
	uppers+=("$u")
done
start_sluiced --source "$SPEC"
after=$(source_upper c)
echo "uppers seen before the kills: ${uppers[*]}; after the last restart: $after"
# The kills must have landed mid-stream, or this test proved nothing.
[[ ${uppers[0]} != closed && ${uppers[0]} -lt 200001 ]] || fail "the first kill landed after the end (${uppers[0]})"
sl tail --consolidate --until 200001 c >"$TMP/out" || fail "tail after the restarts exited with $?"
expect_diff "$TMP/expected" "$TMP/out" "consolidated after three SIGKILLs"
sl tail --progress --until 200001 c >"$TMP/out.progress" || fail "tail --progress after the restarts failed"
sort "$TMP/expected.progress" >"$TMP/a"
sort "$TMP/out.progress" >"$TMP/b"
expect_diff "$TMP/a" "$TMP/b" "update and progress lines after three SIGKILLs"
grep '^progress' "$TMP/expected.progress" >"$TMP/a"
grep '^progress' "$TMP/out.progress" >"$TMP/b"
expect_diff "$TMP/a" "$TMP/b" "the order of progress lines"
stop_sluiced
pass
