#!/usr/bin/env bash
# bench/replication.sh [BUILD_DIR] [ROUNDS] - what replicated acknowledgement costs and how long
# a failover takes (figures in bench/RESULTS.md, "Replication").
#
#   1. ingest throughput and acknowledgement latency (p50/p99) of synchronous batches into a
#      primary with a standby, --min-insync 1 (acknowledged when durable on the primary) and 2
#      (durable on the standby too), alternating rounds (the VM is noisy): 1000-row batches and
#      one-row batches, 100-byte rows, --fsync interval;
#   2. failover under etcd (3 members on loopback): two candidates, --min-insync 1, the default
#      --lease-ms 3000; the leader is SIGKILLed and a producer retries one-row batches against
#      both: the time from the kill to the first acknowledged batch on the new leader.
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
ROUNDS=${2:-3}
BENCH=$B/bench
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ETCD_SH=$ROOT/tests/integration/etcd_cluster.sh
TMP=$(mktemp -d /tmp/sluice-replbench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; "$ETCD_SH" stop "$TMP/etcd" >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT

# start NAME ARGS...: sluiced in the background; waits for its listening line; ADDR=its address
start() {
	local name=$1 i
	shift
	"$B/sluiced" --data-dir "$TMP/$name" "$@" 2>"$TMP/$name.log" &
	PIDS+=($!)
	eval "PID_$name=$!"
	for ((i = 0; i < 400; i++)); do
		ADDR=$(sed -n 's/^sluiced: listening on \(.*\)$/\1/p' "$TMP/$name.log")
		[[ -n $ADDR ]] && return 0
		sleep 0.05
	done
	echo "sluiced $name did not start: $(cat "$TMP/$name.log")" >&2
	exit 1
}

pair() { # pair N: a primary with --min-insync N and its standby; P=the primary's address
	rm -rf "$TMP/p" "$TMP/s"
	start p --listen 127.0.0.1:0 --min-insync "$1" --source "in=ingest,workers=2"
	P=$ADDR
	start s --listen 127.0.0.1:0 --standby-of "$P" --min-insync "$1"
	# until the standby is in sync (with N = 2 the first batch waits for it)
	"$BENCH/sluice_ingest_ack" --until-ack "$P" in 20000 >/dev/null
}

unpair() {
	kill -TERM "$PID_p" "$PID_s"
	wait "$PID_p" "$PID_s" 2>/dev/null || true
}

echo "== replicated acknowledgement: $ROUNDS alternating rounds"
for ((r = 1; r <= ROUNDS; r++)); do
	for n in 1 2; do
		pair "$n"
		big=$("$BENCH/sluice_ingest_ack" "$P" in 200 1000)
		small=$("$BENCH/sluice_ingest_ack" "$P" in 2000 1)
		echo "round $r --min-insync $n  1000-row batches: $big   1-row batches: $small"
		unpair
	done
done

echo "== failover under etcd: $ROUNDS kills"
"$ETCD_SH" start "$TMP/etcd" $$ >/dev/null
EP=$(cat "$TMP/etcd/endpoints")
for ((r = 1; r <= ROUNDS; r++)); do
	read -r PA PB < <("$ETCD_SH" ports "$TMP/etcd" 2)
	A=127.0.0.1:$PA S=127.0.0.1:$PB
	rm -rf "$TMP/a" "$TMP/b"
	# new ports each round: a new --cluster list, so keys of its own in etcd
	common=(--etcd "$EP" --cluster "$A/$S" --process 0 --min-insync 1 --source "in=ingest")
	start a --listen "$A" "${common[@]}"
	start b --listen "$S" "${common[@]}"
	"$BENCH/sluice_ingest_ack" --until-ack "$A,$S" in 20000 >/dev/null
	for ((i = 0; i < 200; i++)); do grep -q "recorded the in-sync set in etcd: $A,$S" "$TMP/a.log" && break; sleep 0.05; done
	kill -KILL "$PID_a"
	ms=$("$BENCH/sluice_ingest_ack" --until-ack "$A,$S" in 20000)
	echo "round $r: kill -> first acknowledged batch on the new leader: $ms ms"
	kill -TERM "$PID_b"
	wait "$PID_a" "$PID_b" 2>/dev/null || true
done
