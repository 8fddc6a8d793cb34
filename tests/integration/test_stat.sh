#!/usr/bin/env bash
# sluice stat: --once prints the sources, the connections and each subscription with its lag,
# in lines of at most 80 columns; without --once it refreshes until SIGTERM (exit 0); given one
# process of a cluster it shows them all; a bad or unreachable address is one clear line on
# stderr (status 2 and 1).
source "$TESTLIB"

start_sluiced --source "c=counter,rate=200" --source "wide=counter,workers=6,rate=100"

# Before any subscription: both sources, no subscription row.
sl stat --once >"$TMP/s0" || fail "sluice stat --once failed"
grep -Eq '^c +0 +[0-9]+ +[0-9]+ ' "$TMP/s0" || fail "no row for source c worker 0: $(cat "$TMP/s0")"
grep -Eq '^wide +6: min +[0-9]+ ' "$TMP/s0" || fail "source wide (6 workers) not summarized: $(cat "$TMP/s0")"
grep -q '^CONN *HANDLE' "$TMP/s0" || fail "no subscriptions table: $(cat "$TMP/s0")"
[[ -z $(sed -n '/^CONN *HANDLE/,$p' "$TMP/s0" | tail -n +2) ]] || fail "a subscription row without subscribers: $(cat "$TMP/s0")"

# With a tail running: its subscription, with its lag and sent frontier.
bg timeout -k 5 120 "$SLUICE" tail --server "$SERVER" c >"$TMP/tail.out"
TAIL_PID=$BG_PID
for ((i = 0; i < 200; i++)); do
	sl stat --once >"$TMP/s1" || fail "sluice stat --once failed while a tail runs"
	grep -Eq '^[0-9]+ +[0-9]+ +c +0 +[0-9]+ +[0-9]+ ' "$TMP/s1" && break
	sleep 0.05
done
grep -Eq '^[0-9]+ +[0-9]+ +c +0 +[0-9]+ +[0-9]+ ' "$TMP/s1" || fail "no subscription row for c worker 0: $(cat "$TMP/s1")"
grep -Eq ' 1 subscriptions$' "$TMP/s1" || fail "the summary does not count 1 subscription: $(head -1 "$TMP/s1")"
grep -Eq '^[0-9]+ +127\.0\.0\.1:[0-9]+ +1 ' "$TMP/s1" || fail "no connection with 1 subscription: $(cat "$TMP/s1")"
# Both views say what the process runs, as its --version does.
[[ $("$SLUICED" --version) =~ ^sluiced\ ([^ ]+)\ \(git\ ([^\)]+)\)$ ]] || fail "sluiced --version: $("$SLUICED" --version)"
ver=${BASH_REMATCH[1]} rev=${BASH_REMATCH[2]}
grep -qxF "sluiced $ver (git $rev)" "$TMP/s1" || fail "stat does not show the version: $(head -4 "$TMP/s1")"
# --json: one document with the same facts (a script's view), and it exits by itself.
sl stat --json >"$TMP/j1" || fail "sluice stat --json failed"
jq -e . "$TMP/j1" >/dev/null || fail "sluice stat --json is not one JSON document: $(head -c 300 "$TMP/j1")"
jq -e --arg s "$SERVER" '.server == $s and (.processes | length) == 1 and .processes[0].error == null
	and .processes[0].subscriptions == 1 and .processes[0].connections >= 1
	and (.processes[0].bytes_out | type) == "number"' "$TMP/j1" >/dev/null ||
	fail "stat --json totals: $(jq -c '.processes[0] | del(.workers, .connection_list, .subscription_list)' "$TMP/j1")"
[[ $(jq '[.processes[0].workers[] | select(.source == "wide")] | length' "$TMP/j1") == 6 ]] ||
	fail "stat --json does not list wide's 6 workers: $(jq -c '.processes[0].workers' "$TMP/j1")"
jq -e '.processes[0].workers[] | select(.source == "c" and .worker == 0) | .upper > 0 and .closed == false' "$TMP/j1" >/dev/null ||
	fail "stat --json: c's worker 0: $(jq -c '.processes[0].workers' "$TMP/j1")"
jq -e '.processes[0].subscription_list | length == 1 and .[0].source == "c" and .[0].worker == 0
	and (.[0].lag | type) == "number" and .[0].sent_upper >= 0' "$TMP/j1" >/dev/null ||
	fail "stat --json subscriptions: $(jq -c '.processes[0].subscription_list' "$TMP/j1")"
jq -e --arg v "$ver" --arg r "$rev" '.processes[0].version == $v and .processes[0].revision == $r' "$TMP/j1" >/dev/null ||
	fail "stat --json version: $(jq -c '.processes[0] | {version, revision}' "$TMP/j1")"
jq -e '.processes[0].connection_list | map(select(.subscriptions == 1)) | length == 1' "$TMP/j1" >/dev/null ||
	fail "stat --json connections: $(jq -c '.processes[0].connection_list' "$TMP/j1")"
for f in "$TMP/s0" "$TMP/s1"; do
	awk 'length($0) > 80 { print "too wide (" length($0) "): " $0; bad = 1 } END { exit bad }' "$f" >&2 ||
		fail "sluice stat does not fit 80 columns"
done
kill_bounded "$TAIL_PID" || true

# Refreshing: several reports, then SIGTERM ends it with status 0.
bg "$SLUICE" stat --server "$SERVER" --interval 0.1 >"$TMP/live"
STAT_PID=$BG_PID
for ((i = 0; i < 200; i++)); do
	[[ $(grep -c '^SOURCE' "$TMP/live") -ge 3 ]] && break
	sleep 0.05
done
[[ $(grep -c '^SOURCE' "$TMP/live") -ge 3 ]] || fail "stat did not refresh: $(cat "$TMP/live")"
rc=0
kill_bounded "$STAT_PID" || rc=$?
[[ $rc -eq 0 ]] || fail "stat exited with $rc on SIGTERM"

# A cluster of two: one address shows every process (workers of both, connections as P:ID);
# with one process down the view says so and --once exits 1.
base=$((20000 + RANDOM % 30000))
CL=("127.0.0.2:$base" "127.0.0.3:$base")
CPIDS=()
for i in 0 1; do
	bg "$SLUICED" --data-dir "$TMP/cl$i" --cluster "${CL[0]},${CL[1]}" --process "$i" \
		--source "k=counter,workers=4,rate=100" 2>"$TMP/cl$i.log"
	CPIDS[$i]=$BG_PID
	for ((k = 0; k < 200; k++)); do
		grep -q "listening on ${CL[$i]}\$" "$TMP/cl$i.log" && break
		kill -0 "$BG_PID" 2>/dev/null || fail "cluster process $i exited: $(cat "$TMP/cl$i.log")"
		sleep 0.05
	done
done
timeout -k 5 60 "$SLUICE" stat --once --server "${CL[1]}" >"$TMP/c1" || fail "stat of the cluster failed"
grep -q "^cluster of 2 via ${CL[1]}: " "$TMP/c1" || fail "no cluster summary: $(cat "$TMP/c1")"
for w in 0 1 2 3; do
	grep -Eq "^k +$w +[0-9]+ " "$TMP/c1" || fail "worker $w of k missing from the cluster view: $(cat "$TMP/c1")"
done
grep -Eq '^0:[0-9]+ +127\.0\.0\.1:' "$TMP/c1" && grep -Eq '^1:[0-9]+ +127\.0\.0\.1:' "$TMP/c1" ||
	fail "connections not named P:ID for both processes: $(cat "$TMP/c1")"
awk 'length($0) > 80 { bad = 1 } END { exit bad }' "$TMP/c1" || fail "the cluster view is wider than 80 columns"
kill_bounded "${CPIDS[0]}" || true
rc=0
timeout -k 5 60 "$SLUICE" stat --once --server "${CL[1]}" >"$TMP/c2" 2>"$TMP/c2.err" || rc=$?
[[ $rc -eq 1 ]] || fail "stat with a process down exited $rc"
grep -q "^process 0 at ${CL[0]} missing: " "$TMP/c2" || fail "the view does not say process 0 is missing: $(cat "$TMP/c2")"
grep -q "process 0 at ${CL[0]}" "$TMP/c2.err" || fail "stderr does not name the missing process: $(cat "$TMP/c2.err")"
grep -Eq "^k +(1|3) +[0-9]+ " "$TMP/c2" || fail "the live process's workers are not shown: $(cat "$TMP/c2")"
rc=0
timeout -k 5 60 "$SLUICE" stat --json --server "${CL[1]}" >"$TMP/j2" 2>/dev/null || rc=$?
[[ $rc -eq 1 ]] || fail "stat --json with a process down exited $rc"
jq -e --arg a "${CL[0]}" '(.processes | length) == 2 and .processes[0].address == $a
	and (.processes[0].error | type) == "string" and .processes[1].error == null
	and ([.processes[1].workers[] | select(.source == "k")] | length) == 2' "$TMP/j2" >/dev/null ||
	fail "stat --json of a cluster with process 0 down: $(cat "$TMP/j2")"
kill_bounded "${CPIDS[1]}" || true

# Errors: one line, a clear reason, the documented status.
expect_err() {
	local want=$1 re=$2 rc=0
	shift 2
	timeout -k 5 60 "$SLUICE" stat "$@" >/dev/null 2>"$TMP/err" || rc=$?
	[[ $rc -eq $want ]] || fail "stat $*: status $rc, expected $want ($(cat "$TMP/err"))"
	[[ $(wc -l <"$TMP/err") -eq 1 ]] || fail "stat $*: stderr is not one line: $(cat "$TMP/err")"
	grep -Eq -- "$re" "$TMP/err" || fail "stat $*: '$(cat "$TMP/err")' does not match /$re/"
}
expect_err 2 "bad --server address 'nonsense'" --once --server nonsense
expect_err 2 "bad --interval" --once --server "$SERVER" --interval 0
expect_err 2 "unexpected argument" --once --server "$SERVER" stray
# A port nobody listens on any more: the stopped server's.
stop_sluiced
expect_err 1 "cannot connect to $SERVER" --once --server "$SERVER"
pass
