#!/usr/bin/env bash
# A standby (sluiced --standby-of) follows a primary into its own data directory; when the
# primary dies for good, `sluice promote` makes the standby take ingest at term 2, and a tail
# given both addresses (--server P,S) moves over by itself and prints every row of both halves
# exactly once.  The old primary coming back (term 1) is stale: a client that knows both
# addresses keeps using the standby, and the promoted standby fences the old primary, which
# then refuses even clients that know only its address (also after a restart).  A standby that
# was not promoted refuses ingest with one clear line.
source "$TESTLIB"

batch() { # batch I: the rows of batch I
	local j
	for j in 1 2 3 4; do printf 'b%s-r%s\n' "$1" "$j"; done
}

# The primary, and its standby.
start_sluiced --source "in=ingest,workers=3"
P=$SERVER P_PID=$SLUICED_PID P_DATA=$SLUICED_DATA P_LOG=$SLUICED_LOG
start_sluiced --standby-of "$P"
S=$SERVER S_PID=$SLUICED_PID S_LOG=$SLUICED_LOG

# A promote of a process that is no standby is refused.
rc=0
timeout -k 5 30 "$SLUICE" promote --server "$P" >"$TMP/p.out" 2>"$TMP/p.err" || rc=$?
[[ $rc -eq 1 ]] || fail "promote of the primary exited with $rc, expected 1"
grep -q 'not a standby' "$TMP/p.err" || fail "promote of the primary said: $(cat "$TMP/p.err")"

# A tail that knows both addresses, in the background for the whole story.
bg timeout -k 5 120 "$SLUICE" tail --server "$P,$S" --retry-for 60 --consolidate --until 10 in \
	>"$TMP/tail.out" 2>"$TMP/tail.err"
TAIL_PID=$BG_PID

for i in 0 1 2 3 4; do
	t=$(batch "$i" | timeout -k 5 60 "$SLUICE" ingest --server "$P" in) || fail "ingest $i into the primary failed"
	[[ $t == "$i" ]] || fail "batch $i got time $t on the primary"
done

# The standby catches up (bounded by wait_upper).
SERVER=$S SLUICED_PID=$S_PID SLUICED_LOG=$S_LOG
wait_upper in 5

# An unpromoted standby refuses ingest with one line.
rc=0
batch 9 | timeout -k 5 60 "$SLUICE" ingest --server "$S" in >"$TMP/r.out" 2>"$TMP/r.err" || rc=$?
[[ $rc -eq 1 ]] || fail "ingest into the unpromoted standby exited with $rc, expected 1"
[[ $(wc -l <"$TMP/r.err") -eq 1 ]] || fail "ingest into the standby printed $(wc -l <"$TMP/r.err") lines: $(cat "$TMP/r.err")"
grep -q "this is a standby of $P: promote it first with sluice promote" "$TMP/r.err" ||
	fail "ingest into the standby said: $(cat "$TMP/r.err")"

# The primary dies for good; the standby is promoted.
kill -KILL "$P_PID"
wait "$P_PID" 2>/dev/null || true
term=$(timeout -k 5 30 "$SLUICE" promote --server "$S") || fail "sluice promote failed"
[[ $term == 2 ]] || fail "promote printed term '$term', expected 2"
rc=0
timeout -k 5 30 "$SLUICE" promote --server "$S" >/dev/null 2>"$TMP/p2.err" || rc=$?
[[ $rc -eq 1 ]] || fail "a second promote exited with $rc, expected 1"

for i in 5 6 7 8 9; do
	t=$(batch "$i" | timeout -k 5 60 "$SLUICE" ingest --server "$S" in) || fail "ingest $i into the promoted standby failed"
	[[ $t == "$i" ]] || fail "batch $i got time $t on the promoted standby"
done

rc=0
wait "$TAIL_PID" || rc=$?
[[ $rc -eq 0 ]] || fail "the tail across the failover exited with $rc: $(cat "$TMP/tail.err")"
for i in 0 1 2 3 4 5 6 7 8 9; do batch "$i"; done | sed 's/^/ok\t/; s/$/\t1/' | sort >"$TMP/expected"
expect_diff "$TMP/expected" "$TMP/tail.out" "tail across the failover"

# The old primary comes back on its data directory, at its address: it is stale (term 1).
P_PORT=${P##*:}
SLUICED_DATA_DIR=$P_DATA start_sluiced --source "in=ingest,workers=3" --listen "127.0.0.1:$P_PORT"
unset SLUICED_DATA_DIR
[[ $SERVER == "$P" ]] || fail "the old primary came back at $SERVER, not $P"
u=$(timeout -k 5 60 "$SLUICE" sources --server "$P,$S" | awk -F'\t' '$1 == "in" { print $5 }')
[[ $u == 10 ]] || fail "sources --server P,S shows upper '$u' for in: not the promoted standby's 10"
u=$(timeout -k 5 60 "$SLUICE" sources --server "$S,$P" | awk -F'\t' '$1 == "in" { print $5 }')
[[ $u == 10 ]] || fail "sources --server S,P shows upper '$u' for in, expected 10"
# The promoted standby fences the old primary once it is back: then even a client that knows
# only the old address is refused, and told where to go (bounded wait: the fencer retries
# every 0.5 s).
fenced=0
for ((i = 0; i < 100; i++)); do
	rc=0
	timeout -k 5 30 "$SLUICE" sources --server "$P" >/dev/null 2>"$TMP/fenced.err" || rc=$?
	if [[ $rc -ne 0 ]] && grep -q "superseded by $S" "$TMP/fenced.err"; then
		fenced=1
		break
	fi
	sleep 0.1
done
[[ $fenced -eq 1 ]] || fail "the old primary was not fenced: $(cat "$TMP/fenced.err")"
[[ $(wc -l <"$TMP/fenced.err") -eq 1 ]] || fail "not a one-line error: $(cat "$TMP/fenced.err")"
echo "old primary refuses: $(cat "$TMP/fenced.err")"
# And it stays fenced across a restart on its data directory.
stop_sluiced
SLUICED_DATA_DIR=$P_DATA start_sluiced --source "in=ingest,workers=3" --listen "127.0.0.1:$P_PORT"
unset SLUICED_DATA_DIR
rc=0
timeout -k 5 30 "$SLUICE" sources --server "$P" >/dev/null 2>"$TMP/fenced2.err" || rc=$?
[[ $rc -ne 0 ]] && grep -q "superseded by $S" "$TMP/fenced2.err" || fail "a restart lifted the fence: $(cat "$TMP/fenced2.err")"

# A standby of the promoted standby follows all ten batches.
start_sluiced --standby-of "$S"
wait_upper in 10
timeout -k 5 60 "$SLUICE" tail --server "$SERVER" --consolidate --until 10 in >"$TMP/s2.out" ||
	fail "tail of the second standby failed"
expect_diff "$TMP/expected" "$TMP/s2.out" "tail of a standby of the promoted standby"
pass
