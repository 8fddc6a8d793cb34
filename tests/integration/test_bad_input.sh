#!/usr/bin/env bash
# sluiced against hostile or broken clients, spoken to with bash's /dev/tcp: random bytes, a
# length prefix over the maximum, a frame cut short by EOF, an unknown frame type, and a client
# that floods requests and never reads the answers.  After each, the server must still serve
# `sluice sources`, and its memory must not grow with what the silent client refused to read.
source "$TESTLIB"

start_sluiced --source "c=counter,workers=2,rate=1000" --source "in=ingest"
HOST=${SERVER%:*} PORT=${SERVER##*:}

# A valid Hello (docs/PROTOCOL.md): u32 length | u8 type 0x01 | magic "SLCE" | u16 version 1 |
# u16 flags | u64 session | u64 epoch | u64 fingerprint | str name ("x").
HELLO='\x26\x00\x00\x00\x01SLCE\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00x'
LIST='\x01\x00\x00\x00\x30'

# send FILE: connects, writes FILE, closes (bounded to 10 s; errors such as a reset are fine).
send() {
	timeout -k 2 10 bash -c 'exec 3<>"/dev/tcp/$0/$1" && cat "$2" >&3' "$HOST" "$PORT" "$1" 2>/dev/null || true
}

# still_serving WHAT: the server is alive and answers `sluice sources`.
still_serving() {
	kill -0 "$SLUICED_PID" 2>/dev/null || fail "sluiced died after $1: $(tail -n 5 "$SLUICED_LOG")"
	sl sources >"$TMP/sources" 2>"$TMP/sources.err" || fail "sluice sources failed after $1: $(cat "$TMP/sources.err")"
	grep -q $'^c\t' "$TMP/sources" || fail "sources output wrong after $1: $(cat "$TMP/sources")"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SLUICED_PID/status"; }

still_serving "start"

# The Hello above is accepted: Hello and ListSources are answered with Hello and Sources
# (frame types 0x01 and 0x31), so the cases below really get past the handshake.
timeout -k 2 10 bash -c 'exec 3<>"/dev/tcp/$0/$1"; printf "$2$3" >&3; head -c 200 <&3' "$HOST" "$PORT" "$HELLO" "$LIST" \
	>"$TMP/answer" 2>/dev/null || true
read -r -a ans <<<"$(od -An -tu1 -v "$TMP/answer" | tr '\n' ' ')"
(( ${#ans[@]} > 9 )) && [[ ${ans[4]} == 1 ]] || fail "the test's Hello was not answered with a Hello: ${ans[*]}"
hello_len=$((ans[0] + 256 * ans[1] + 65536 * ans[2]))
[[ ${ans[$((4 + hello_len + 4))]:-none} == 49 ]] || fail "ListSources after the test's Hello got no Sources (0x31): ${ans[*]}"

# 1. Random bytes, with and without a Hello first.
for _ in 1 2 3; do
	head -c 65536 /dev/urandom >"$TMP/garbage"
	send "$TMP/garbage"
	{ printf "$HELLO"; cat "$TMP/garbage"; } >"$TMP/hello-garbage"
	send "$TMP/hello-garbage"
done
still_serving "random bytes"

# 2. A length prefix over the maximum frame (0x7fffffff, and 0xffffffff).
printf '\xff\xff\xff\x7f\x01abc' >"$TMP/big"
send "$TMP/big"
{ printf "$HELLO"; printf '\xff\xff\xff\xff\x30'; head -c 100000 /dev/zero; } >"$TMP/hello-big"
send "$TMP/hello-big"
still_serving "an oversized length prefix"

# 3. Frames truncated by EOF: a Hello cut in the middle, and a Subscribe missing its tail.
printf "$HELLO" | head -c 17 >"$TMP/cut1"
send "$TMP/cut1"
{ printf "$HELLO"; printf '\x31\x00\x00\x00\x10\x01\x00\x00\x00'; } >"$TMP/cut2"
send "$TMP/cut2"
printf '\x05' >"$TMP/cut3"
send "$TMP/cut3"
still_serving "truncated frames"

# 4. Unknown frame types, before and after Hello; a zero length; a wrong magic and version.
printf '\x01\x00\x00\x00\x7f' >"$TMP/unknown1"
send "$TMP/unknown1"
{ printf "$HELLO"; printf '\x01\x00\x00\x00\x7f\x03\x00\x00\x00\xee\x01\x02'; } >"$TMP/unknown2"
send "$TMP/unknown2"
{ printf "$HELLO"; printf '\x00\x00\x00\x00'; } >"$TMP/zero"
send "$TMP/zero"
printf "$HELLO" | sed 's/SLCE/XXXX/' >"$TMP/magic"
send "$TMP/magic"
still_serving "unknown frame types"

# 5. Many connections at once, each sending garbage, some just connecting and closing.
pids=()
for _ in $(seq 1 20); do
	send "$TMP/garbage" &
	pids+=($!)
	timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$PORT" 2>/dev/null &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
still_serving "20 concurrent bad clients"

# 6. A client that sends a Hello and then floods ListSources (~10 MB of requests) but never
#    reads: the server must stop reading from it instead of queueing the answers.
printf "$LIST" >"$TMP/flood"
for _ in $(seq 1 21); do cat "$TMP/flood" "$TMP/flood" >"$TMP/flood2" && mv "$TMP/flood2" "$TMP/flood"; done
{ printf "$HELLO"; cat "$TMP/flood"; } >"$TMP/flood.all"
rss_before=$(rss_kb)
bg timeout -k 2 60 bash -c 'exec 3<>"/dev/tcp/$0/$1" && cat "$2" >&3; sleep 60' "$HOST" "$PORT" "$TMP/flood.all"
flood_pid=$BG_PID
sleep 3
still_serving "a flooding client that never reads"
rss_after=$(rss_kb)
growth=$(((rss_after - rss_before) / 1024))
echo "sluiced RSS: ${rss_before} kB before the flood, ${rss_after} kB during it"
[[ $growth -lt 64 ]] || fail "sluiced grew by $growth MB for a client that does not read"

# An ordinary subscriber is served meanwhile.
sl tail --until 50 c >/dev/null || fail "tail failed while a silent client is connected"
kill_bounded "$flood_pid" || true
still_serving "the flooding client left"

stop_sluiced
pass
