#!/usr/bin/env bash
# A leader cut off from etcd and from its standby (its network namespace's only link goes
# down) stops acknowledging before a new leader is elected: every batch the old leader
# acknowledged was acknowledged before the first one the new leader acknowledged, no time is
# acknowledged by both, and the old leader's last acknowledgement is within its lease of the
# cut.  --min-insync 1, so the old leader alone could go on acknowledging but for its lease.
# Needs root for `ip netns` (the namespace and veth pair are removed at the end).
source "$TESTLIB"
ETCD_SH=$(dirname "$TESTLIB")/etcd_cluster.sh
NS=slpart$$
VH=slh$$ VN=sln$$
NET=10.$((200 + $$ % 50)).$(($$ % 250)).
HOSTIP=${NET}1 NSIP=${NET}2
ip netns add "$NS" || fail "cannot create a network namespace (the test needs root)"
cleanup_net() { ip netns del "$NS" 2>/dev/null || true; ip link del "$VH" 2>/dev/null || true; }
trap 'rc=$?; cleanup_net; (exit $rc); _cleanup' EXIT
ip link add "$VH" type veth peer name "$VN"
ip link set "$VN" netns "$NS"
ip addr add "$HOSTIP/24" dev "$VH"
ip link set "$VH" up
ip netns exec "$NS" ip addr add "$NSIP/24" dev "$VN"
ip netns exec "$NS" ip link set "$VN" up
ip netns exec "$NS" ip link set lo up

ETCD_CLIENT_HOST=$HOSTIP "$ETCD_SH" start "$TMP/etcd" $$ || fail "etcd did not start"
EP=$(cat "$TMP/etcd/endpoints")
read -r PL PS < <("$ETCD_SH" ports "$TMP/etcd" 2)
L=$NSIP:$PL S=$HOSTIP:$PS
ARGS=(--etcd "$EP" --cluster "$L/$S" --process 0 --lease-ms 2000 --min-insync 1 --source "in=ingest")

now_ms() { echo $(($(date +%s%N) / 1000000)); }

bg ip netns exec "$NS" "$SLUICED" "${ARGS[@]}" --listen "$L" --data-dir "$TMP/data.l" 2>"$TMP/sluiced.l.log"
wait_log "$TMP/sluiced.l.log" 'leads process 0 at term' 20
bg "$SLUICED" "${ARGS[@]}" --listen "$S" --data-dir "$TMP/data.s" 2>"$TMP/sluiced.s.log"
wait_log "$TMP/sluiced.s.log" "follows the leader $L" 20
wait_log "$TMP/sluiced.l.log" "recorded the in-sync set in etcd: $L,$S" 20

# producer WHERE PREFIX SERVER: batches sent once each; "PREFIX i time ms" per acknowledgement
producer() {
	local i t
	for ((i = 0; i < 2000; i++)); do
		[[ -e $TMP/stop ]] && break
		if t=$(printf '%s%s\n' "$2" "$i" | $1 timeout -k 2 5 "$SLUICE" ingest --server "$3" in 2>/dev/null); then
			echo "$2 $i $t $(now_ms)" >>"$TMP/acks.$2"
		else
			sleep 0.02
		fi
	done
}
: >"$TMP/acks.L"
: >"$TMP/acks.S"
bg producer "ip netns exec $NS" L "$L"
bg producer "" S "$S"
for ((i = 0; i < 400; i++)); do (($(wc -l <"$TMP/acks.L") >= 20)) && break; sleep 0.05; done
(($(wc -l <"$TMP/acks.L") >= 20)) || fail "the leader acknowledged fewer than 20 batches"

cut=$(now_ms)
ip link set "$VH" down
wait_log "$TMP/sluiced.s.log" 'leads process 0 at term' 15
for ((i = 0; i < 400; i++)); do (($(wc -l <"$TMP/acks.S") >= 10)) && break; sleep 0.05; done
(($(wc -l <"$TMP/acks.S") >= 10)) || fail "the new leader acknowledged fewer than 10 batches"
touch "$TMP/stop"

last_l=$(tail -n 1 "$TMP/acks.L" | cut -d' ' -f4)
first_s=$(head -n 1 "$TMP/acks.S" | cut -d' ' -f4)
echo "cut at $cut; old leader's last ack $((last_l - cut)) ms after it; new leader's first $((first_s - cut)) ms after it"
((last_l < first_s)) || fail "the old leader acknowledged at $last_l, after the new leader's first at $first_s"
((last_l - cut <= 2000)) || fail "the old leader acknowledged $((last_l - cut)) ms after the cut: beyond its lease"
dup=$(cat "$TMP/acks.L" "$TMP/acks.S" | cut -d' ' -f3 | sort | uniq -d | head -n 3)
[[ -z $dup ]] || fail "times acknowledged twice: $dup"
pass
