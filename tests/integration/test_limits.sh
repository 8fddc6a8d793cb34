#!/usr/bin/env bash
# sluiced's limit flags (README.md, "Limits"): bad values are refused at start with a clear
# message, and each limit set by a flag is enforced: --handshake-timeout, --idle-timeout,
# --max-connections (an Error frame saying why, then the close), --max-row and
# --max-batch-rows (the ingest batch is refused with the reason).  Clients are spoken to with
# bash's /dev/tcp; every read is bounded by timeout.  (Subscription limits, the subscribe rate
# and the output bound are tested in tests/integration/itest_hostile.c.)
source "$TESTLIB"

# 1. Bad values: exit status 2 and one line naming the flag.
bad() {
	local rc=0
	timeout -k 2 20 "$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/bad" "$@" >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
	[[ $rc -eq 2 ]] || fail "sluiced $* exited $rc, expected 2: $(cat "$TMP/bad.err")"
	grep -q -- "${1%%=*}" "$TMP/bad.err" || fail "sluiced $*: message does not name the flag: $(cat "$TMP/bad.err")"
	[[ $(wc -l <"$TMP/bad.err") -eq 1 ]] || fail "sluiced $*: expected one line: $(cat "$TMP/bad.err")"
}
bad --max-connections 0
bad --max-connections lots
bad --max-subscriptions 0
bad --max-subscribe-rate 10/m
bad --subscribe-burst -1
bad --handshake-timeout 5
bad --idle-timeout 10
bad --max-frame 1000
bad --max-output 1048576
bad --max-batch-bytes 0
bad --max-batch-rows 0
bad --max-row 65473
"$SLUICED" --help >"$TMP/help" || fail "sluiced --help exited with $?"
grep -q -- '--max-subscribe-rate' "$TMP/help" || fail "--help does not list the limit flags"

start_sluiced --source "in=ingest" --handshake-timeout 300 --idle-timeout 2000 \
	--max-connections 2 --max-row 10 --max-batch-rows 3 --max-subscribe-rate 100/s
HOST=${SERVER%:*} PORT=${SERVER##*:}

# A valid Hello (docs/PROTOCOL.md): u32 length 38 | u8 type 0x01 | magic "SLCE" | u16 version 1
# | u16 flags | u64 session | u64 epoch | u64 fingerprint | str name ("x").
HELLO='\x26\x00\x00\x00\x01SLCE\x01\x00\x00\x00'
HELLO+='\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
HELLO+='\x01\x00\x00\x00x'

# talk FILE OUT: connects, sends FILE (may be empty), then reads until the server closes (at
# most 10 s) into OUT.  Prints how many milliseconds that took.
talk() {
	local t0 t1
	t0=$(date +%s%N)
	timeout -k 2 10 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1; cat "$2" >&3; cat <&3 >"$3"' \
		"$HOST" "$PORT" "$1" "$2" 2>/dev/null || true
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

# 2. --handshake-timeout 300: a silent connection is told and closed well within a second.
: >"$TMP/empty"
ms=$(talk "$TMP/empty" "$TMP/silent.out")
grep -qa "no valid Hello within 300 ms" "$TMP/silent.out" || fail "silent connection: no handshake-timeout Error (got $(od -c "$TMP/silent.out" | head -3))"
[[ $ms -lt 3000 ]] || fail "silent connection closed only after $ms ms"

# 3. --idle-timeout 2000: after a Hello, a client that never answers the server's Pings is
# dropped after about two seconds.
printf "$HELLO" >"$TMP/hello"
ms=$(talk "$TMP/hello" "$TMP/idle.out")
grep -qa "no traffic from the client for 2000 ms" "$TMP/idle.out" || fail "idle connection: no idle-timeout Error (got $(od -c "$TMP/idle.out" | head -3))"
[[ $ms -ge 1900 && $ms -lt 6000 ]] || fail "idle connection closed after $ms ms, expected about 2000"

# 4. --max-connections 2: with two connections open, a third is told why and closed at once.
exec 4<>"/dev/tcp/$HOST/$PORT"
exec 5<>"/dev/tcp/$HOST/$PORT"
printf "$HELLO" >&4
printf "$HELLO" >&5
ms=$(talk "$TMP/hello" "$TMP/third.out")
grep -qa "too many connections (at most 2)" "$TMP/third.out" || fail "third connection: no 'too many connections' Error (got $(od -c "$TMP/third.out" | head -3))"
[[ $ms -lt 900 ]] || fail "third connection took $ms ms to be refused"
grep -q "refused a connection" "$SLUICED_LOG" || fail "sluiced did not log the refusal"
exec 4>&- 5>&-
# Once they are gone (at the latest at the idle timeout), connections are served again.
for ((i = 0; i < 100; i++)); do
	sl sources >"$TMP/sources" 2>/dev/null && break
	sleep 0.1
done
grep -q $'^in\t' "$TMP/sources" || fail "not serving again after the connections closed"

# 5. --max-row 10 and --max-batch-rows 3: the batch is refused with the reason, exit 1.
rc=0
printf 'short\nthis row is too long\n' | sl ingest in >"$TMP/ing.out" 2>"$TMP/ing.err" || rc=$?
[[ $rc -eq 1 ]] || fail "ingest of a long row exited $rc: $(cat "$TMP/ing.err")"
grep -q "exceeds the limit of 10" "$TMP/ing.err" || fail "long row: reason not shown: $(cat "$TMP/ing.err")"
rc=0
printf 'a\nb\nc\nd\n' | sl ingest in >"$TMP/ing.out" 2>"$TMP/ing.err" || rc=$?
[[ $rc -eq 1 ]] || fail "ingest of 4 rows exited $rc: $(cat "$TMP/ing.err")"
grep -q "limit of 3 updates" "$TMP/ing.err" || fail "long batch: reason not shown: $(cat "$TMP/ing.err")"
printf 'a\nb\nc\n' | sl ingest in >"$TMP/ing.out" 2>"$TMP/ing.err" || fail "a batch within the limits was refused: $(cat "$TMP/ing.err")"
grep -qE '^[0-9]+$' "$TMP/ing.out" || fail "ingest printed no time: $(cat "$TMP/ing.out")"

stop_sluiced
pass
