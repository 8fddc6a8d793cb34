#!/usr/bin/env bash
# sluiced --etcd: one process with two candidates, leadership in a real 3-member etcd.  A tail
# of a counter and a loop of ingest batches run while the leader is SIGKILLed: the standby
# leads within 5 s, and once the old leader is restarted it rejoins as a standby (the group is
# back to 2 copies in sync) and everything continues; then the new leader is killed and the
# old one leads again.  At the end every acknowledged batch is present exactly once, every
# unacknowledged one whole or not at all, and the counter's tail is exactly the counter.
source "$TESTLIB"
ETCD_SH=$(dirname "$TESTLIB")/etcd_cluster.sh
LEASE_MS=2000

"$ETCD_SH" start "$TMP/etcd" $$ || fail "etcd did not start"
# (its watchdog stops the members once this script is gone)
EP=$(cat "$TMP/etcd/endpoints")
read -r PA PB < <("$ETCD_SH" ports "$TMP/etcd" 2)
A=127.0.0.1:$PA B=127.0.0.1:$PB
CL="$A/$B"
SPECS=(--source "in=ingest,workers=2" --source "c=counter,rate=2000")

# start_candidate NAME ADDR: starts (or restarts, on its data directory) candidate NAME.
start_candidate() {
	local name=$1 addr=$2 i
	local log="$TMP/sluiced.$name.$((++_SLUICED_N)).log"
	bg "$SLUICED" --etcd "$EP" --cluster "$CL" --process 0 --listen "$addr" \
		--data-dir "$TMP/data.$name" --lease-ms "$LEASE_MS" "${SPECS[@]}" 2>"$log"
	eval "PID_$name=$BG_PID LOG_$name=$log"
	for ((i = 0; i < 400; i++)); do
		grep -q "^sluiced: listening on $addr\$" "$log" && return 0
		kill -0 "$BG_PID" 2>/dev/null || fail "candidate $name exited at start: $(cat "$log")"
		sleep 0.05
	done
	fail "candidate $name printed no 'listening on' line within 20 s"
}


batch() { # batch I: the rows of batch I
	local j
	for j in 1 2 3; do printf 'b%s-r%s\n' "$1" "$j"; done
}

start_candidate a "$A"
wait_log "$LOG_a" 'leads process 0 at term' 20
start_candidate b "$B"
wait_log "$LOG_b" "follows the leader $A" 20
# only a standby etcd lists as in sync may take over: wait until it is
wait_log "$LOG_a" "recorded the in-sync set in etcd: $A,$B" 20

# The producer: batch i is sent once (never retried: a retry could add a second copy); its
# time is recorded when acknowledged.  It runs until told to stop (bounded: 3000 batches).
: >"$TMP/acks"
(
	for ((i = 0; i < 3000; i++)); do
		[[ -e $TMP/stop ]] && break
		if t=$(batch "$i" | timeout -k 5 30 "$SLUICE" ingest --server "$A,$B" in 2>>"$TMP/ingest.err"); then
			echo "$i $t" >>"$TMP/acks"
		else
			sleep 0.05
		fi
	done
) &
PRODUCER=$!
BG_PIDS+=("$PRODUCER")

# acks_at_least N: waits (at most 60 s) until N batches more than now are acknowledged.
acks_grow() {
	local base i
	base=$(wc -l <"$TMP/acks")
	for ((i = 0; i < 1200; i++)); do
		(($(wc -l <"$TMP/acks") >= base + $1)) && return 0
		sleep 0.05
	done
	fail "fewer than $1 more batches acknowledged within 60 s: $(tail -n 3 "$TMP/ingest.err")"
}

acks_grow 20

# Kill the leader: the standby leads within 5 s.
t0=$(date +%s%N)
kill -KILL "$PID_a"
wait "$PID_a" 2>/dev/null || true
wait_log "$LOG_b" 'leads process 0 at term' 10
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
echo "failover 1: $ms ms from the kill to the new leader"
((ms <= 5000)) || fail "the standby took $ms ms to lead (more than 5 s)"

# The old leader rejoins as a standby on its own data directory; two copies again.
start_candidate a "$A"
wait_log "$LOG_a" "follows the leader $B" 20
wait_log "$LOG_b" "recorded the in-sync set in etcd: $B,$A" 20
acks_grow 20
echo "the old leader rejoined; $(wc -l <"$TMP/acks") batches acknowledged"

# And once more the other way.
kill -KILL "$PID_b"
wait "$PID_b" 2>/dev/null || true
t0=$(date +%s%N)
wait_log "$LOG_a" 'leads process 0 at term' 10
ms=$((($(date +%s%N) - t0) / 1000000))
echo "failover 2: $ms ms"
start_candidate b "$B"
wait_log "$LOG_b" "follows the leader $A" 20
wait_log "$LOG_a" "recorded the in-sync set in etcd: $A,$B" 20
acks_grow 20
echo "rejoined again; $(wc -l <"$TMP/acks") batches acknowledged"

touch "$TMP/stop"
wait "$PRODUCER" || true
last=$(tail -n 1 "$TMP/acks" | cut -d' ' -f2)
until=$((last + 1))

# Every acknowledged batch once; the others whole or absent.
timeout -k 5 60 "$SLUICE" tail --server "$A,$B" --consolidate --until "$until" in >"$TMP/in.out" ||
	fail "the final tail of in failed"
awk -F'\t' '$4 != 1 && $3 != 1 { print "row " $2 " has count " $3 }' "$TMP/in.out" >"$TMP/bad"
cut -f2 "$TMP/in.out" | sort | uniq -d >>"$TMP/bad"
[[ ! -s $TMP/bad ]] || fail "rows present more than once: $(head "$TMP/bad")"
while read -r i t; do
	for j in 1 2 3; do
		grep -q "^ok	b$i-r$j	1\$" "$TMP/in.out" || fail "acknowledged batch $i (time $t) lacks row b$i-r$j"
	done
done <"$TMP/acks"
for b in $(cut -f2 "$TMP/in.out" | sed 's/-r[0-9]*$//' | sort -u); do
	n=$(grep -c "^ok	$b-r" "$TMP/in.out")
	[[ $n == 3 ]] || fail "batch ${b#b} is present in part: $n of its 3 rows"
done
echo "acknowledged: $(wc -l <"$TMP/acks") batches; present: $(($(wc -l <"$TMP/in.out") / 3))"

# The counter: exactly its definition, across both failovers.
timeout -k 5 60 "$SLUICE" tail --server "$A,$B" --until 2000 c >"$TMP/c.out" || fail "tail of c failed"
for ((i = 1; i < 2000; i++)); do printf 'ok\t%d\t1\t%d\n' "$i" "$i"; done >"$TMP/c.expected"
expect_diff "$TMP/c.expected" "$TMP/c.out" "the counter across two failovers"
pass
