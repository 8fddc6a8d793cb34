#!/usr/bin/env bash
# Token authentication (--auth-token-file): with the right token tail, sources, ingest and
# promote work; a wrong token or none gets one line saying "authentication failed" and a
# non-zero exit; a token file that others may read, or an empty one, is refused at start; a
# standby given the token follows its primary (and one with a wrong token says why).
source "$TESTLIB"

# Every sluiced is started with start_server and stopped with stop_all (lib.sh).

printf 's3cret-token\n' >"$TMP/token"
printf 'wrong-token\n' >"$TMP/wrong"
printf 's3cret-token' >"$TMP/token-nonl" # the same token without a newline
chmod 600 "$TMP/token" "$TMP/wrong" "$TMP/token-nonl"

expect_auth_refused() { # NAME WHAT
	[[ $RC -ne 0 && $RC -ne 124 && $RC -ne 137 ]] || fail "$2: exited with $RC"
	grep -q "authentication failed" "$TMP/$1.err" || fail "$2: stderr says '$(cat "$TMP/$1.err")'"
	[[ $(wc -l <"$TMP/$1.err") -eq 1 ]] || fail "$2: more than one line: $(cat "$TMP/$1.err")"
}

for i in $(seq 1 20); do printf 'ok\t%s\t1\n' "$i"; done | sort >"$TMP/expected"

start_server --auth-token-file "$TMP/token" --source "c=counter,workers=2,max=20" --source "in=ingest"
P=$SERVER P_PID=$SLUICED_PID

# The right token (with or without its newline) works.
run_client tail "$SLUICE" tail --server "$P" --auth-token-file "$TMP/token" --consolidate c
[[ $RC -eq 0 ]] || fail "tail with the token exited with $RC: $(cat "$TMP/tail.err")"
expect_diff "$TMP/expected" "$TMP/tail.out" "tail with the token"
run_client sources "$SLUICE" sources --server "$P" --auth-token-file "$TMP/token-nonl"
[[ $RC -eq 0 ]] || fail "sources with the token exited with $RC: $(cat "$TMP/sources.err")"
grep -q "^c	" "$TMP/sources.out" || fail "sources with the token printed: $(cat "$TMP/sources.out")"
RC=0
t=$(printf 'a\nb\n' | timeout -k 5 30 "$SLUICE" ingest --server "$P" --auth-token-file "$TMP/token" in 2>"$TMP/ingest.err") || RC=$?
[[ $RC -eq 0 && $t == 0 ]] || fail "ingest with the token: exit $RC, time '$t': $(cat "$TMP/ingest.err")"

# A wrong token, and none, are refused by every command.
run_client wrong "$SLUICE" tail --server "$P" --auth-token-file "$TMP/wrong" --consolidate c
expect_auth_refused wrong "tail with a wrong token"
run_client none "$SLUICE" tail --server "$P" --consolidate c
expect_auth_refused none "tail without a token"
run_client srcnone "$SLUICE" sources --server "$P"
expect_auth_refused srcnone "sources without a token"
run_client ingnone "$SLUICE" ingest --server "$P" in
expect_auth_refused ingnone "ingest without a token"
run_client statnone "$SLUICE" stat --once --server "$P"
expect_auth_refused statnone "stat without a token"
run_client stat "$SLUICE" stat --once --server "$P" --auth-token-file "$TMP/token"
[[ $RC -eq 0 ]] || fail "stat with the token exited with $RC: $(cat "$TMP/stat.err")"
grep -Eq '^c +0 +closed' "$TMP/stat.out" || fail "stat with the token does not show source c: $(cat "$TMP/stat.out")"
run_client promnone "$SLUICE" promote --server "$P"
expect_auth_refused promnone "promote without a token"
# (with the token, promote reaches the server: which refuses, not being a standby)
run_client promok "$SLUICE" promote --server "$P" --auth-token-file "$TMP/token"
[[ $RC -eq 1 ]] && grep -q "not a standby" "$TMP/promok.err" || fail "promote with the token said: $(cat "$TMP/promok.err")"
grep -q "authentication" "$TMP/promok.err" && fail "promote with the token was refused: $(cat "$TMP/promok.err")"

# Token files that are readable by others, or empty, are refused, by clients and servers.
printf 'tok\n' >"$TMP/open"
chmod 644 "$TMP/open"
run_client open "$SLUICE" sources --server "$P" --auth-token-file "$TMP/open"
[[ $RC -ne 0 ]] && grep -q "accessible by group or others" "$TMP/open.err" || fail "a mode 644 token file: $(cat "$TMP/open.err")"
: >"$TMP/empty"
chmod 600 "$TMP/empty"
RC=0
timeout -k 5 30 "$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/d-empty" --auth-token-file "$TMP/empty" \
	>/dev/null 2>"$TMP/empty.err" || RC=$?
[[ $RC -eq 1 ]] && grep -q "is empty" "$TMP/empty.err" || fail "sluiced with an empty token file: exit $RC: $(cat "$TMP/empty.err")"

# A standby with the token follows the primary and serves with the same token.
start_server --standby-of "$P" --auth-token-file "$TMP/token"
S=$SERVER S_PID=$SLUICED_PID S_LOG=$SLUICED_LOG
u=
for ((i = 0; i < 300; i++)); do
	kill -0 "$S_PID" 2>/dev/null || fail "the standby died: $(tail -n 20 "$S_LOG")"
	u=$(timeout -k 5 30 "$SLUICE" sources --server "$S" --auth-token-file "$TMP/token" 2>/dev/null |
		awk -F'\t' '$1 == "c" { print $5 }') || true
	[[ $u == closed ]] && break
	sleep 0.1
done
[[ $u == closed ]] || fail "the standby did not follow to the end within 30 s (upper '$u'): $(tail -n 20 "$S_LOG")"
run_client standby "$SLUICE" tail --server "$S" --auth-token-file "$TMP/token" --consolidate c
[[ $RC -eq 0 ]] || fail "tail of the standby exited with $RC: $(cat "$TMP/standby.err")"
expect_diff "$TMP/expected" "$TMP/standby.out" "tail of the standby"
run_client sbnone "$SLUICE" sources --server "$S"
expect_auth_refused sbnone "sources of the standby without a token"

# A standby with the wrong token does not start: it says why.
RC=0
timeout -k 5 30 "$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/d-wrong" --standby-of "$P" \
	--auth-token-file "$TMP/wrong" >/dev/null 2>"$TMP/sbwrong.err" || RC=$?
[[ $RC -ne 0 && $RC -ne 124 ]] && grep -q "authentication failed" "$TMP/sbwrong.err" ||
	fail "a standby with a wrong token: exit $RC: $(cat "$TMP/sbwrong.err")"

# A cluster of two processes sharing the token: a client with it sees the whole cluster; a
# process given another token is refused by its peer's start-up check, which says so.
base=$((20000 + RANDOM % 30000))
CL=("127.0.0.2:$base" "127.0.0.3:$base")
start_member() { # start_member I TOKENFILE
	local log="$TMP/member$1.log" k
	bg "$SLUICED" --listen "${CL[$1]}" --data-dir "$TMP/member$1" --cluster "${CL[0]},${CL[1]}" \
		--process "$1" --source "c=counter,workers=2,max=20" --auth-token-file "$2" 2>"$log"
	ALL_SLUICED+=("$BG_PID:$log")
	for ((k = 0; k < 200; k++)); do
		grep -q "listening on ${CL[$1]}\$" "$log" && return 0
		kill -0 "$BG_PID" 2>/dev/null || fail "cluster process $1 exited at start: $(cat "$log")"
		sleep 0.05
	done
	fail "cluster process $1 did not listen on ${CL[$1]}: $(cat "$log")"
}
start_member 0 "$TMP/token"
start_member 1 "$TMP/token"
run_client cluster "$SLUICE" tail --server "${CL[1]}" --auth-token-file "$TMP/token" --consolidate c
[[ $RC -eq 0 ]] || fail "tail of the cluster with the token exited with $RC: $(cat "$TMP/cluster.err")"
expect_diff "$TMP/expected" "$TMP/cluster.out" "tail of the cluster with the token"
run_client clnone "$SLUICE" tail --server "${CL[0]}" --consolidate c
expect_auth_refused clnone "tail of the cluster without a token"
# process 1 again, with the wrong token: process 0 greets it and is refused
RC=0
kill_bounded "${ALL_SLUICED[-1]%%:*}" || RC=$?
[[ $RC -eq 0 ]] || fail "cluster process 1 exited with $RC"
unset 'ALL_SLUICED[${#ALL_SLUICED[@]}-1]'
start_member 1 "$TMP/wrong"
for ((i = 0; i < 200; i++)); do # bounded: 10 s
	grep -q "process 0 at ${CL[0]} refused us: authentication failed" "$TMP/member1.log" && break
	sleep 0.05
done
grep -q "process 0 at ${CL[0]} refused us: authentication failed" "$TMP/member1.log" ||
	fail "the process with the wrong token did not report its peer's refusal: $(cat "$TMP/member1.log")"

stop_all
pass
