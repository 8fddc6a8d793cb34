#!/usr/bin/env bash
# sluiced --etcd with three processes, each a leader and a standby (six candidates on loopback,
# one 3-member etcd): killing process 1's leader pauses only process 1's workers (process 0's
# published frontier keeps moving meanwhile), its standby leads within 5 s, and a tail of the
# whole cluster given one address is exactly the counter across the failover.
source "$TESTLIB"
ETCD_SH=$(dirname "$TESTLIB")/etcd_cluster.sh
"$ETCD_SH" start "$TMP/etcd" $$ || fail "etcd did not start"
EP=$(cat "$TMP/etcd/endpoints")
read -r -a P < <("$ETCD_SH" ports "$TMP/etcd" 6)
for i in 0 1 2; do
	LEAD[i]=127.0.0.1:${P[i]}
	STBY[i]=127.0.0.1:${P[i + 3]}
done
CL="${LEAD[0]}/${STBY[0]},${LEAD[1]}/${STBY[1]},${LEAD[2]}/${STBY[2]}"

# start NAME PROCESS ADDR: one candidate; sets PID_NAME, LOG_NAME
start() {
	local name=$1 proc=$2 addr=$3 i log="$TMP/sluiced.$1.log"
	bg "$SLUICED" --etcd "$EP" --cluster "$CL" --process "$proc" --listen "$addr" \
		--data-dir "$TMP/data.$name" --lease-ms 2000 --metrics-listen 127.0.0.1:0 \
		--source "c=counter,workers=3,rate=1000" 2>"$log"
	eval "PID_$name=$BG_PID LOG_$name=$log"
	for ((i = 0; i < 400; i++)); do
		grep -q "^sluiced: listening on $addr\$" "$log" && return 0
		kill -0 "$BG_PID" 2>/dev/null || fail "candidate $name exited at start: $(cat "$log")"
		sleep 0.05
	done
	fail "candidate $name did not start"
}


published() { # LOGFILE WORKER: c's published frontier of WORKER at that candidate's metrics
	local port
	port=$(sed -n 's/^sluiced: metrics on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1")
	curl -fsS -m 5 "http://127.0.0.1:$port/metrics" |
		awk -v k="sluice_source_published{source=\"c\",worker=\"$2\"}" '$1 == k { print $2 }'
}

for i in 0 1 2; do
	start "l$i" "$i" "${LEAD[i]}"
	wait_log "$TMP/sluiced.l$i.log" "leads process $i at term" 20
done
for i in 0 1 2; do
	start "s$i" "$i" "${STBY[i]}"
	wait_log "$TMP/sluiced.s$i.log" "follows the leader ${LEAD[i]}" 20
	wait_log "$TMP/sluiced.l$i.log" "recorded the in-sync set in etcd: ${LEAD[i]},${STBY[i]}" 20
done

# Kill process 1's leader; process 0 goes on while process 1 has no leader.
before=$(published "$TMP/sluiced.l0.log" 0)
t0=$(date +%s%N)
kill -KILL "$PID_l1"
wait "$PID_l1" 2>/dev/null || true
sleep 0.5 # inside the lease: process 1 has no leader yet (its lease is 2 s)
during=$(published "$TMP/sluiced.l0.log" 0)
grep -q "leads process 1" "$TMP/sluiced.s1.log" && fail "process 1's standby led within 0.5 s: the lease did not hold"
[[ -n $before && -n $during && $during -gt $before ]] ||
	fail "process 0's published frontier did not move while process 1 failed over ($before -> $during)"
wait_log "$TMP/sluiced.s1.log" "leads process 1 at term" 10
ms=$((($(date +%s%N) - t0) / 1000000))
echo "process 1 failed over in $ms ms; process 0 moved from $before to $during meanwhile"
((ms <= 5000)) || fail "failover took $ms ms"
# process 1 needs two copies again before it publishes: the old leader rejoins
start l1b 1 "${LEAD[1]}"
wait_log "$TMP/sluiced.l1b.log" "follows the leader ${STBY[1]}" 20

U=$(($(published "$TMP/sluiced.l0.log" 0) + 2000))
timeout -k 5 120 "$SLUICE" tail --server "${LEAD[0]}" --consolidate --until "$U" c >"$TMP/c.out" ||
	fail "tail of the cluster failed"
seq 1 $((U - 1)) | awk '{ printf "ok\t%s\t1\n", $1 }' | sort >"$TMP/c.expected"
expect_diff "$TMP/c.expected" "$TMP/c.out" "the cluster's counter across process 1's failover"
pass
