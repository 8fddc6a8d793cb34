#!/usr/bin/env bash
# sluiced --etcd with etcd's majority lost: the leader cannot renew its lease, so once its safe
# deadline passes it acknowledges nothing more (ingest refused with one line naming why), while
# reads of what it published go on.  When etcd has its quorum back the leader acts again (its
# lease survived: a new etcd leader restarts every lease's TTL) or, if the lease is gone, it
# exits with status 75 and a restart leads again.
source "$TESTLIB"
ETCD_SH=$(dirname "$TESTLIB")/etcd_cluster.sh

"$ETCD_SH" start "$TMP/etcd" $$ || fail "etcd did not start"
EP=$(cat "$TMP/etcd/endpoints")
read -r PA < <("$ETCD_SH" ports "$TMP/etcd" 1)
A=127.0.0.1:$PA

start_leader() {
	local i log="$TMP/sluiced.$((++_SLUICED_N)).log"
	bg "$SLUICED" --etcd "$EP" --cluster "$A" --process 0 --listen "$A" --data-dir "$TMP/data" \
		--lease-ms 2000 --source "in=ingest" 2>"$log"
	SLUICED_PID=$BG_PID SLUICED_LOG=$log SERVER=$A
	for ((i = 0; i < 400; i++)); do
		grep -q "leads process 0 at term" "$log" && return 0
		kill -0 "$BG_PID" 2>/dev/null || fail "sluiced exited at start: $(cat "$log")"
		sleep 0.05
	done
	fail "sluiced did not lead within 20 s: $(cat "$log")"
}

ingest() { # ingest I: batch I into in; its time on stdout, errors in $TMP/ing.err
	printf 'q%s-a\nq%s-b\n' "$1" "$1" | timeout -k 5 30 "$SLUICE" ingest --server "$A" in 2>"$TMP/ing.err"
}

start_leader
for i in 0 1 2; do
	t=$(ingest "$i") || fail "ingest $i failed: $(cat "$TMP/ing.err")"
	[[ $t == "$i" ]] || fail "batch $i got time $t"
done

# etcd loses its majority: within the lease, ingest is refused; reads go on.
"$ETCD_SH" kill "$TMP/etcd" 1
"$ETCD_SH" kill "$TMP/etcd" 2
refused=0
for ((i = 0; i < 200; i++)); do
	if ! ingest "x$i" >/dev/null; then
		grep -q 'does not lead its group now' "$TMP/ing.err" || fail "ingest failed otherwise: $(cat "$TMP/ing.err")"
		refused=1
		break
	fi
	sleep 0.05
done
[[ $refused -eq 1 ]] || fail "ingest still acknowledged 10 s after etcd lost its majority"
[[ $(wc -l <"$TMP/ing.err") -eq 1 ]] || fail "not a one-line error: $(cat "$TMP/ing.err")"
# Batches acknowledged after the kill (before the deadline) are published too: read up to the
# published frontier, which must cover the three batches.
u=$(timeout -k 5 30 "$SLUICE" sources --server "$A" | awk -F'\t' '$1 == "in" { print $5 }')
[[ -n $u && $u -ge 3 ]] || fail "the published frontier is '$u' while etcd is down, expected >= 3"
timeout -k 5 30 "$SLUICE" tail --server "$A" --consolidate --until 3 in >"$TMP/read.out" ||
	fail "reading published data failed while etcd was down"
for i in 0 1 2; do printf 'ok\tq%s-a\t1\nok\tq%s-b\t1\n' "$i" "$i"; done | sort >"$TMP/read.expected"
expect_diff "$TMP/read.expected" "$TMP/read.out" "reads while etcd is down"

# etcd is back: the leader acts again, or ends (75) and leads after a restart.
"$ETCD_SH" restart "$TMP/etcd" 1
"$ETCD_SH" restart "$TMP/etcd" 2
ok=0
for ((i = 0; i < 400; i++)); do
	if ingest "back$i" >/dev/null; then ok=1; break; fi
	if ! kill -0 "$SLUICED_PID" 2>/dev/null; then
		rc=0
		wait "$SLUICED_PID" || rc=$?
		[[ $rc -eq 75 ]] || fail "sluiced exited with $rc after etcd came back, expected 75"
		start_leader
	fi
	sleep 0.05
done
[[ $ok -eq 1 ]] || fail "ingest not taken again within 20 s of etcd's return: $(cat "$TMP/ing.err")"
pass
