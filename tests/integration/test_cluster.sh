#!/usr/bin/env bash
# A storage cluster of three processes on three loopback addresses: `sluice tail` and `sluice
# sources` given any one address see the whole cluster; one process killed with SIGKILL and
# restarted mid-stream changes nothing in the result (and the streams of the other processes
# keep flowing while it is down: asserted); ingest spreads a batch over every worker
# of every process; processes started with different cluster lists are refused by clients.
source "$TESTLIB"

N=100000 K=1000 W=6
SPEC="c=counter,workers=$W,max=$N,keep=$K,rate=40000"
ING="in=ingest,workers=$W"
base=$((20000 + RANDOM % 30000))
ADDRS=("127.0.0.2:$base" "127.0.0.3:$base" "127.0.0.4:$base")
CLUSTER=$(IFS=,; echo "${ADDRS[*]}")
PIDS=()
LOGS=()

# start_process I [CLUSTER-LIST]: starts process I and waits (bounded) for it to listen.
start_process() {
	local i=$1 list=${2:-$CLUSTER} log="$TMP/p$1.$RANDOM.log" k
	bg "$SLUICED" --listen "${ADDRS[$i]}" --data-dir "$TMP/data$i" --cluster "$list" --process "$i" \
		--source "$SPEC" --source "$ING" 2>"$log"
	PIDS[$i]=$BG_PID
	LOGS[$i]=$log
	for ((k = 0; k < 200; k++)); do
		grep -q "listening on ${ADDRS[$i]}\$" "$log" && return 0
		kill -0 "${PIDS[$i]}" 2>/dev/null || fail "process $i exited at start: $(cat "$log")"
		sleep 0.05
	done
	fail "process $i did not listen on ${ADDRS[$i]}: $(cat "$log")"
}

for i in 0 1 2; do start_process "$i"; done
SERVER=${ADDRS[1]}

seq $((N - K + 1)) "$N" | awk '{ printf "ok\t%d\t1\n", $1 }' | sort >"$TMP/expected"

# Three tails, one through each address, while process 2 is killed and restarted mid-stream.
for i in 0 1 2; do
	bg timeout -k 5 120 "$SLUICE" tail --server "${ADDRS[$i]}" --retry-for 60 --consolidate \
		--until $((N + 1)) c >"$TMP/tail$i"
	TAILS[$i]=$BG_PID
done
# And a streaming tail, to watch the other processes' subscriptions during the outage.
bg timeout -k 5 120 "$SLUICE" tail --server "${ADDRS[0]}" --retry-for 60 --until $((N + 1)) c >"$TMP/stream"
STREAM=$BG_PID
# max_time_elsewhere: the latest insert the stream printed from a worker of process 0 or 1
# (row k is inserted by worker (k-1) mod 6, hosted by process (k-1) mod 3).
max_time_elsewhere() {
	awk -F'\t' '$1 == "ok" && $3 == 1 && ($4 - 1) % 3 != 2 && $2 > m { m = $2 } END { print m + 0 }' "$TMP/stream"
}
for ((k = 0; k < 400; k++)); do
	[[ $(max_time_elsewhere) -ge 10000 ]] && break
	sleep 0.05
done
[[ $(max_time_elsewhere) -ge 10000 ]] || fail "the stream did not start within 20 s"
kill -KILL "${PIDS[2]}"
wait "${PIDS[2]}" 2>/dev/null || true
# While process 2 is down, the subscriptions to processes 0 and 1 keep flowing.
at_kill=$(max_time_elsewhere)
for ((k = 0; k < 400; k++)); do
	[[ $(max_time_elsewhere) -ge $((at_kill + 3000)) ]] && break
	sleep 0.05
done
during=$(max_time_elsewhere)
[[ $during -ge $((at_kill + 3000)) ]] ||
	fail "processes 0 and 1 stalled while process 2 was down: from time $at_kill to $during in 20 s"
echo "while process 2 was down the stream went on from time $at_kill to $during"
start_process 2
for i in 0 1 2; do
	wait "${TAILS[$i]}" || fail "tail through ${ADDRS[$i]} exited with $?"
	expect_diff "$TMP/expected" "$TMP/tail$i" "tail --consolidate through ${ADDRS[$i]} (process 2 killed mid-stream)"
done
wait "$STREAM" || fail "the streaming tail exited with $?"
awk -F'\t' '{ c[$4] += $3 } END { for (r in c) if (c[r] != 0) printf "ok\t%s\t%d\n", r, c[r] }' "$TMP/stream" |
	sort >"$TMP/stream.consolidated"
expect_diff "$TMP/expected" "$TMP/stream.consolidated" "the streaming tail, consolidated"

# sources through any address covers all six workers.
for i in 0 1 2; do
	line=$(timeout 30 "$SLUICE" sources --server "${ADDRS[$i]}" | awk -F'\t' '$1 == "c"')
	[[ $line == "c	1	counter	$W	closed" ]] || fail "sources through ${ADDRS[$i]}: '$line'"
done

# Ingest 100,000 rows through one address: every worker of every process gets its share.
seq 1 100000 | sed 's/^/row-/' >"$TMP/rows"
t=$(timeout 60 "$SLUICE" ingest --server "${ADDRS[0]}" in <"$TMP/rows") || fail "ingest failed"
timeout 60 "$SLUICE" tail --server "${ADDRS[2]}" --consolidate --until $((t + 1)) in | cut -f2 | sort >"$TMP/ingested"
sort "$TMP/rows" | expect_diff /dev/stdin "$TMP/ingested" "100,000 ingested rows read back"
timeout 60 "$SLUICE" tail --server "${ADDRS[1]}" --until $((t + 1)) in | awk -F'\t' '{ print $4 }' | sort >"$TMP/ingested.stream"
sort "$TMP/rows" | expect_diff /dev/stdin "$TMP/ingested.stream" "the ingested rows as a stream"

# A process started with another cluster list: clients refuse the mix.
kill_bounded "${PIDS[2]}" || true
start_process 2 "${ADDRS[0]},${ADDRS[1]},${ADDRS[2]},127.0.0.5:$base"
rc=0
timeout 30 "$SLUICE" sources --server "${ADDRS[0]}" >/dev/null 2>"$TMP/mix.err" || rc=$?
[[ $rc -ne 0 ]] || fail "a client accepted processes with different cluster lists"
[[ $(wc -l <"$TMP/mix.err") -eq 1 ]] || fail "not a one-line error: $(cat "$TMP/mix.err")"
grep -qi "cluster\|disagree" "$TMP/mix.err" || fail "the error does not say what is wrong: $(cat "$TMP/mix.err")"
echo "refused: $(cat "$TMP/mix.err")"
# The processes notice too: the odd one greets its peers at start and they refuse it.
noticed=0
for ((k = 0; k < 100; k++)); do
	if grep -q "refused us" "${LOGS[2]}" && grep -q "another cluster configuration" "${LOGS[0]}"; then
		noticed=1
		break
	fi
	sleep 0.1
done
[[ $noticed -eq 1 ]] || fail "the processes did not notice the mix: $(cat "${LOGS[2]}" "${LOGS[0]}")"
pass
