#!/usr/bin/env bash
# Errors of both programs: a one-line message on stderr and the documented exit status (2 for
# bad arguments, 1 for an unknown source or a refused connection).
source "$TESTLIB"

# expect_fail STATUS REGEX CMD...: CMD exits with STATUS and prints one stderr line matching REGEX.
expect_fail() {
	local want=$1 re=$2 rc=0
	shift 2
	timeout -k 5 60 "$@" >"$TMP/out" 2>"$TMP/err" </dev/null || rc=$?
	[[ $rc -eq $want ]] || fail "'$*': exit status $rc, expected $want (stderr: $(cat "$TMP/err"))"
	[[ $(wc -l <"$TMP/err") -eq 1 ]] || fail "'$*': stderr is not one line: $(cat "$TMP/err")"
	grep -Eq -- "$re" "$TMP/err" || fail "'$*': stderr '$(cat "$TMP/err")' does not match /$re/"
}

D=(--data-dir "$TMP/data-err")
L=(--listen 127.0.0.1:0)

# sluice: bad arguments.
expect_fail 2 'usage|COMMAND' "$SLUICE"
expect_fail 2 "unknown command" "$SLUICE" frobnicate
expect_fail 2 "missing SOURCE" "$SLUICE" tail
expect_fail 2 "unknown option '--bogus'" "$SLUICE" tail --bogus x
expect_fail 2 "--from" "$SLUICE" tail --from abc x
expect_fail 2 "--until" "$SLUICE" tail --until -5 x
expect_fail 2 "needs a value" "$SLUICE" tail x --server
expect_fail 2 "--server" "$SLUICE" tail --server nonsense x
expect_fail 2 "unexpected argument" "$SLUICE" tail a b
expect_fail 2 "unexpected argument" "$SLUICE" sources extra
expect_fail 2 "missing SOURCE" "$SLUICE" ingest
# sluice bench runs the benchmark program: its help, and its exit status 2 for bad arguments.
# (help is captured whole first: grep -q stopping early would SIGPIPE the writer under pipefail)
timeout 30 "$SLUICE" bench --help >"$TMP/help" || fail "sluice bench --help exited with $?"
grep -q 'usage: sluice_bench' "$TMP/help" || fail "sluice bench --help is not the benchmark's help"
rc=0
timeout 30 "$SLUICE" bench --no-such-flag >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "sluice bench --no-such-flag: exit status $rc, expected 2"
expect_fail 2 "unexpected argument .stray." "$SLUICE" stat stray
for c in tail sources ingest stat; do
	"$SLUICE" "$c" --help >"$TMP/help" || fail "sluice $c --help exited with $?"
	grep -q "usage: sluice $c" "$TMP/help" || fail "sluice $c --help"
done
"$SLUICE" --help >"$TMP/help" || fail "sluice --help exited with $?"
grep -q 'usage: sluice' "$TMP/help" || fail "sluice --help"
"$SLUICED" --help >"$TMP/help" || fail "sluiced --help exited with $?"
grep -q 'usage: sluiced' "$TMP/help" || fail "sluiced --help"

# sluiced: bad arguments and bad source specs, all refused before serving.
expect_fail 2 "unknown option" "$SLUICED" "${L[@]}" "${D[@]}" --bogus
expect_fail 2 "unexpected argument" "$SLUICED" "${L[@]}" "${D[@]}" stray
expect_fail 2 "listen" "$SLUICED" --listen nonsense "${D[@]}"
expect_fail 2 "unknown kind 'nope'" "$SLUICED" "${L[@]}" "${D[@]}" --source x=nope
expect_fail 2 "unknown key 'foo'" "$SLUICED" "${L[@]}" "${D[@]}" --source x=counter,foo=1
expect_fail 2 "workers=abc" "$SLUICED" "${L[@]}" "${D[@]}" --source x=counter,workers=abc
expect_fail 2 "workers=0" "$SLUICED" "${L[@]}" "${D[@]}" --source x=counter,workers=0
expect_fail 2 "NAME=KIND" "$SLUICED" "${L[@]}" "${D[@]}" --source counter
expect_fail 2 "given twice" "$SLUICED" "${L[@]}" "${D[@]}" --source x=counter,max=1,max=2
expect_fail 2 "defined twice" "$SLUICED" "${L[@]}" "${D[@]}" --source x=counter --source x=ingest
expect_fail 2 "unknown key 'keep'" "$SLUICED" "${L[@]}" "${D[@]}" --source x=ingest,keep=1
expect_fail 2 "--cluster and --process" "$SLUICED" "${L[@]}" "${D[@]}" --cluster 127.0.0.1:1
expect_fail 2 "--process 2 is not in 0..1" "$SLUICED" "${D[@]}" --cluster 127.0.0.1:1,127.0.0.1:2 --process 2
expect_fail 2 "bad --cluster address" "$SLUICED" "${D[@]}" --cluster 127.0.0.1:1,nonsense --process 0
expect_fail 2 "bad --cluster address" "$SLUICED" "${D[@]}" --cluster 127.0.0.1:1/,127.0.0.1:2 --process 0
expect_fail 2 "names no address for this standby" "$SLUICED" "${D[@]}" --cluster 127.0.0.1:1,127.0.0.1:2 --process 1 --standby-of 127.0.0.1:2

# A one-process cluster listens on its own address.
start_sluiced --source "n=counter,max=3"
probe_port=${SERVER##*:}
stop_sluiced
bg "$SLUICED" --data-dir "$TMP/data-cluster" --cluster "127.0.0.1:$probe_port" --process 0 2>"$TMP/cluster.log"
cluster_pid=$BG_PID
for ((i = 0; i < 200; i++)); do
	grep -q "listening on 127.0.0.1:$probe_port\$" "$TMP/cluster.log" && break
	kill -0 "$cluster_pid" 2>/dev/null || break
	sleep 0.05
done
grep -q "listening on 127.0.0.1:$probe_port\$" "$TMP/cluster.log" || fail "--cluster ADDR --process 0 did not listen on ADDR: $(cat "$TMP/cluster.log")"
kill_bounded "$cluster_pid" || fail "sluiced --cluster exited non-zero on SIGTERM"

# Unknown source.
start_sluiced --source "known=counter,max=3"
expect_fail 1 "^sluice: unknown source nosuch$" "$SLUICE" tail --server "$SERVER" nosuch
expect_fail 1 "^sluice: unknown source nosuch$" "$SLUICE" tail --server "$SERVER" --consolidate --until 5 nosuch
sl tail --until 4 known >/dev/null || fail "tail of a known source failed"
port=${SERVER##*:}
stop_sluiced

# Refused connection (the port sluiced just left): retried for a few seconds, then one line.
start=$(date +%s)
expect_fail 1 "^sluice: cannot connect to 127.0.0.1:$port: Connection refused$" "$SLUICE" sources --server "127.0.0.1:$port"
elapsed=$(($(date +%s) - start))
[[ $elapsed -ge 3 && $elapsed -le 20 ]] || fail "refused connection took $elapsed s (expected about 5 s of retries)"
expect_fail 1 "^sluice: cannot connect to 127.0.0.1:$port: Connection refused$" "$SLUICE" tail --server "127.0.0.1:$port" x
echo row | expect_fail 1 "^sluice: cannot connect to 127.0.0.1:$port: Connection refused$" "$SLUICE" ingest --server "127.0.0.1:$port" x

pass
