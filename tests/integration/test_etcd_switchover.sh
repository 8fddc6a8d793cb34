#!/usr/bin/env bash
# A graceful switchover under etcd: `sluice promote --server B` on the standby B of leader A
# makes A stop acknowledging and producing, wait until B holds everything, and resign; B leads
# and `sluice promote` prints its term; A exits with status 75 and, restarted, follows B.  A
# producer running through it sees refusals only during the switch itself, and at the end every
# acknowledged batch is there exactly once and the counter is exact.
source "$TESTLIB"
ETCD_SH=$(dirname "$TESTLIB")/etcd_cluster.sh
"$ETCD_SH" start "$TMP/etcd" $$ || fail "etcd did not start"
EP=$(cat "$TMP/etcd/endpoints")
read -r PA PB < <("$ETCD_SH" ports "$TMP/etcd" 2)
A=127.0.0.1:$PA B=127.0.0.1:$PB

start_candidate() { # NAME ADDR
	local i log="$TMP/sluiced.$1.$((++_SLUICED_N)).log"
	bg "$SLUICED" --etcd "$EP" --cluster "$A/$B" --process 0 --listen "$2" \
		--data-dir "$TMP/data.$1" --lease-ms 2000 --source "in=ingest" \
		--source "c=counter,rate=1000" 2>"$log"
	eval "PID_$1=$BG_PID LOG_$1=$log"
	for ((i = 0; i < 400; i++)); do
		grep -q "^sluiced: listening on $2\$" "$log" && return 0
		sleep 0.05
	done
	fail "candidate $1 did not start: $(cat "$log")"
}


now_ms() { echo $(($(date +%s%N) / 1000000)); }

start_candidate a "$A"
wait_log "$LOG_a" 'leads process 0 at term' 20
start_candidate b "$B"
wait_log "$LOG_b" "follows the leader $A" 20
wait_log "$LOG_a" "recorded the in-sync set in etcd: $A,$B" 20

: >"$TMP/acks"
: >"$TMP/refused"
(
	for ((i = 0; i < 3000; i++)); do
		[[ -e $TMP/stop ]] && break
		if t=$(printf 'w%s-1\nw%s-2\n' "$i" "$i" | timeout -k 5 30 "$SLUICE" ingest --server "$A,$B" in 2>/dev/null); then
			echo "$i $t" >>"$TMP/acks"
		else
			now_ms >>"$TMP/refused"
			sleep 0.05
		fi
	done
) &
PRODUCER=$!
BG_PIDS+=("$PRODUCER")
for ((i = 0; i < 600; i++)); do (($(wc -l <"$TMP/acks") >= 20)) && break; sleep 0.05; done

t0=$(now_ms)
term=$(timeout -k 5 30 "$SLUICE" promote --server "$B") || fail "sluice promote --server B failed"
t1=$(now_ms)
echo "switchover took $((t1 - t0)) ms; B leads at term $term"
wait_log "$LOG_b" "leads process 0 at term $term" 5
grep -q "hands the leadership of process 0 over to $B" "$LOG_a" || fail "A does not say it handed over"
rc=0
wait "$PID_a" || rc=$?
[[ $rc -eq 75 ]] || fail "the old leader exited with $rc, expected 75"

base=$(wc -l <"$TMP/acks")
for ((i = 0; i < 600; i++)); do (($(wc -l <"$TMP/acks") >= base + 5)) && break; sleep 0.05; done
start_candidate a "$A"
wait_log "$LOG_a" "follows the leader $B" 20
wait_log "$LOG_b" "recorded the in-sync set in etcd: $B,$A" 20
base=$(wc -l <"$TMP/acks")
for ((i = 0; i < 600; i++)); do (($(wc -l <"$TMP/acks") >= base + 10)) && break; sleep 0.05; done
t2=$(now_ms)
touch "$TMP/stop"
wait "$PRODUCER" || true

# Refusals only during the switch (and, alone on B with --min-insync 2, until A was back).
while read -r t; do
	((t >= t0 - 100)) || fail "a batch was refused before the switchover began (at $t, switch at $t0)"
	((t <= t2)) || fail "a batch was refused after A was back in sync"
done <"$TMP/refused"

last=$(tail -n 1 "$TMP/acks" | cut -d' ' -f2)
timeout -k 5 60 "$SLUICE" tail --server "$A,$B" --consolidate --until $((last + 1)) in >"$TMP/in.out" ||
	fail "tail of in failed"
while read -r i t; do
	for j in 1 2; do
		grep -q "^ok	w$i-$j	1\$" "$TMP/in.out" || fail "acknowledged batch $i (time $t) lacks row w$i-$j"
	done
done <"$TMP/acks"
[[ -z $(cut -f2 "$TMP/in.out" | sort | uniq -d) ]] || fail "a row is there twice"
timeout -k 5 60 "$SLUICE" tail --server "$A,$B" --consolidate --until 1500 c >"$TMP/c.out" || fail "tail of c failed"
seq 1 1499 | awk '{ printf "ok\t%s\t1\n", $1 }' | sort >"$TMP/c.expected"
expect_diff "$TMP/c.expected" "$TMP/c.out" "the counter across the switchover"
echo "acknowledged $(wc -l <"$TMP/acks") batches, $(wc -l <"$TMP/refused") refused during the switch"
pass
