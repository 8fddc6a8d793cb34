#!/usr/bin/env bash
# --min-insync 2 (static roles): a primary acknowledges an ingest batch, and publishes a time,
# only once its standby holds it durably.  Alone it refuses ingest with a line naming how many
# copies are in sync, and its counter's frontier stays at 0 although the counter has run; with
# its standby in sync both go; when the standby dies ingest is refused again; a restarted
# standby catches up and joins again.  Every batch acknowledged is on the standby: the primary
# is SIGKILLed right after the last acknowledgement and the standby's data directory, served
# on its own, holds every acknowledged batch exactly once.
source "$TESTLIB"

batch() { # batch I: the rows of batch I
	local j
	for j in 1 2 3; do printf 'b%s-r%s\n' "$1" "$j"; done
}

# try_ingest I: one ingest of batch I into the primary; prints its time, or fails (stderr in
# $TMP/ing.err).
try_ingest() {
	batch "$1" | timeout -k 5 60 "$SLUICE" ingest --server "$P" in 2>"$TMP/ing.err"
}

start_sluiced --min-insync 2 --source "in=ingest,workers=2" --source "c=counter,max=200" \
	--metrics-listen 127.0.0.1:0
P=$SERVER P_PID=$SLUICED_PID P_LOG=$SLUICED_LOG
MPORT=$(sed -n 's/^sluiced: metrics on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$P_LOG")
metric() { # metric NAME{LABELS}: its value on the primary
	curl -fsS -m 10 "http://127.0.0.1:$MPORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

# Alone: ingest refused with one clear line, nothing published.
rc=0
try_ingest 0 >/dev/null || rc=$?
[[ $rc -eq 1 ]] || fail "ingest without a standby exited with $rc, expected 1"
grep -q 'only 1 of the 2 copies --min-insync requires are in sync' "$TMP/ing.err" ||
	fail "ingest without a standby said: $(cat "$TMP/ing.err")"
[[ $(wc -l <"$TMP/ing.err") -eq 1 ]] || fail "not a one-line error: $(cat "$TMP/ing.err")"
u=$(source_upper c)
[[ $u == 0 ]] || fail "the counter's frontier is '$u' with no copy in sync, expected 0"
[[ $(metric sluice_insync_copies) == 1 && $(metric sluice_min_insync) == 2 ]] ||
	fail "metrics say $(metric sluice_insync_copies) of $(metric sluice_min_insync) copies in sync, expected 1 of 2"
[[ $(metric 'sluice_source_published{source="c",worker="0"}') == 0 ]] || fail "c's published frontier is not 0 alone"

# The standby: once in sync, ingest is taken and the counter's frontier moves.
start_sluiced --standby-of "$P" --min-insync 2
S=$SERVER S_PID=$SLUICED_PID S_LOG=$SLUICED_LOG S_DATA=$SLUICED_DATA
SERVER=$P SLUICED_PID=$P_PID SLUICED_LOG=$P_LOG
ok=0
for ((i = 0; i < 200; i++)); do
	if t=$(try_ingest 0); then ok=1; break; fi
	grep -q 'copies --min-insync requires are in sync' "$TMP/ing.err" || fail "ingest failed: $(cat "$TMP/ing.err")"
	sleep 0.05
done
[[ $ok -eq 1 ]] || fail "ingest still refused 10 s after the standby started"
[[ $t == 0 ]] || fail "the first batch got time $t, expected 0"
grep -q 'joined the in-sync set' "$P_LOG" || fail "the primary's log does not say the standby joined"
[[ $(metric sluice_insync_copies) == 2 && $(metric "sluice_replica_insync{member=\"$S\"}") == 1 ]] ||
	fail "metrics do not show the standby $S in sync: $(curl -fsS -m 10 "http://127.0.0.1:$MPORT/metrics" | grep -E 'insync|replica')"
[[ $(metric sluice_leader) == 1 ]] || fail "sluice_leader is not 1 on the primary"
timeout -k 5 30 "$SLUICE" stat --server "$P" --once >"$TMP/stat.out" || fail "sluice stat failed"
grep -q "^leader at term 1, 2 of 2 copies in sync; standby $S in sync, lag [0-9]*\$" "$TMP/stat.out" ||
	fail "sluice stat does not show the replication: $(head -n 6 "$TMP/stat.out")"
timeout -k 5 30 "$SLUICE" stat --server "$P" --json >"$TMP/stat.json" || fail "sluice stat --json failed"
[[ $(jq -r '.processes[0] | "\(.leader) \(.insync_copies) \(.min_insync) \(.replicas[0].member) \(.replicas[0].insync)"' "$TMP/stat.json") == "true 2 2 $S true" ]] ||
	fail "sluice stat --json does not show the replication: $(jq -c '.processes[0] | {leader, insync_copies, min_insync, replicas}' "$TMP/stat.json")"
timeout -k 5 60 "$SLUICE" tail --server "$P" --until 200 c >"$TMP/c.out" || fail "tail of the counter failed"
for ((i = 1; i < 200; i++)); do printf 'ok\t%d\t1\t%d\n' "$i" "$i"; done >"$TMP/c.expected"
expect_diff "$TMP/c.expected" "$TMP/c.out" "the counter published with a standby in sync"

# The standby dies: ingest is refused again.
kill -KILL "$S_PID"
wait "$S_PID" 2>/dev/null || true
refused=0
for ((i = 0; i < 200; i++)); do
	if ! try_ingest 99 >/dev/null && grep -q 'only 1 of the 2 copies' "$TMP/ing.err"; then
		refused=1
		break
	fi
	sleep 0.05
done
[[ $refused -eq 1 ]] || fail "ingest was not refused after the standby died: $(cat "$TMP/ing.err")"
grep -q 'left (its connection closed)' "$P_LOG" || fail "the primary's log does not say the standby left"
# Batches accepted between the kill and the refusal were acknowledged?  None may be: each
# acknowledged one must be on the standby, which is dead.  Only refused attempts were made.

# The standby restarts on its data directory and joins again.
SLUICED_DATA_DIR=$S_DATA start_sluiced --standby-of "$P" --min-insync 2
unset SLUICED_DATA_DIR
S_PID=$SLUICED_PID S_LOG=$SLUICED_LOG
SERVER=$P SLUICED_PID=$P_PID SLUICED_LOG=$P_LOG
ok=0
for ((i = 0; i < 200; i++)); do
	if t=$(try_ingest 1); then ok=1; break; fi
	sleep 0.05
done
[[ $ok -eq 1 ]] || fail "ingest still refused after the standby restarted: $(cat "$TMP/ing.err")"
[[ $t == 1 ]] || fail "batch 1 got time $t, expected 1"
for i in 2 3 4 5; do
	t=$(try_ingest "$i") || fail "ingest $i failed: $(cat "$TMP/ing.err")"
	[[ $t == "$i" ]] || fail "batch $i got time $t"
done

# The primary dies right after the last acknowledgement; the standby's copy has everything.
kill -KILL "$P_PID"
wait "$P_PID" 2>/dev/null || true
SERVER=$S SLUICED_PID=$S_PID SLUICED_LOG=$S_LOG
stop_sluiced
SLUICED_DATA_DIR=$S_DATA start_sluiced --source "in=ingest,workers=2" --source "c=counter,max=200"
unset SLUICED_DATA_DIR
timeout -k 5 60 "$SLUICE" tail --server "$SERVER" --consolidate --until 6 in >"$TMP/in.out" ||
	fail "tail of the standby's copy failed"
for i in 0 1 2 3 4 5; do batch "$i"; done | sed 's/^/ok\t/; s/$/\t1/' | sort >"$TMP/in.expected"
expect_diff "$TMP/in.expected" "$TMP/in.out" "the standby's copy of every acknowledged batch"
pass
