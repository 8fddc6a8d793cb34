#!/usr/bin/env bash
# sluiced's event log: --log-format json writes one JSON object per line (ts, level, event, msg
# and fields) with connection open and close events naming the peer (and the close's reason);
# --log-level filters by severity, but the "listening on" line is always written.
source "$TESTLIB"
command -v jq >/dev/null || { echo "jq is not installed (scripts/install-deps.sh)"; exit 77; }

# start_logged LOG ARGS...: starts sluiced and waits for its listening event; sets SERVER.
start_logged() {
	local log=$1 i port=
	shift
	bg "$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/data.$RANDOM" --source "c=counter,max=50" "$@" 2>"$log"
	SLUICED_PID=$BG_PID
	SLUICED_LOG=$log
	for ((i = 0; i < 400; i++)); do
		port=$(sed -n 's/^sluiced: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$log")
		if [[ -z $port ]]; then
			port=$( (grep '^{' "$log" || true) | jq -r 'select(.event == "listening") | .addr' 2>/dev/null |
				sed -n 's/^127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p') || true
		fi
		[[ -n $port ]] && break
		kill -0 "$SLUICED_PID" 2>/dev/null || fail "sluiced exited at start: $(cat "$log")"
		sleep 0.05
	done
	[[ -n $port ]] || fail "no listening event within 20 s: $(cat "$log")"
	SERVER="127.0.0.1:$port"
}

# JSON: every line is an object; connection events carry the peer.
start_logged "$TMP/json.log" --log-format json
sl sources >/dev/null || fail "sluice sources failed"
sl tail --until 10 c >/dev/null || fail "sluice tail failed"
for ((i = 0; i < 200; i++)); do
	[[ $(grep -c '"event":"conn_close"' "$TMP/json.log") -ge 2 ]] && break
	sleep 0.05
done
stop_sluiced
n=0
while IFS= read -r line; do
	n=$((n + 1))
	jq -e 'type == "object" and (.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")) and
		(.level | IN("error", "warn", "info", "debug")) and (.event | type == "string") and
		(.msg | type == "string")' <<<"$line" >/dev/null || fail "not a JSON event line: $line"
done <"$TMP/json.log"
(( n >= 6 )) || fail "too few log lines: $(cat "$TMP/json.log")"
opens=$(jq -c 'select(.event == "conn_open")' "$TMP/json.log")
closes=$(jq -c 'select(.event == "conn_close")' "$TMP/json.log")
[[ $(wc -l <<<"$opens") -ge 2 ]] || fail "expected 2 connection opens: $(cat "$TMP/json.log")"
[[ $(wc -l <<<"$closes") -ge 2 ]] || fail "expected 2 connection closes: $(cat "$TMP/json.log")"
jq -e -s 'all(.[]; (.peer | test("^127\\.0\\.0\\.1:[0-9]+$")) and (.conn | type == "number") and .level == "info")' \
	<<<"$opens" >/dev/null || fail "an open event lacks the peer or the conn id: $opens"
jq -e -s 'all(.[]; (.peer | test("^127\\.0\\.0\\.1:[0-9]+$")) and (.reason | length > 0) and (.bytes_out | type == "number"))' \
	<<<"$closes" >/dev/null || fail "a close event lacks the peer or the reason: $closes"
# Each close names a peer that opened.
for p in $(jq -r '.peer' <<<"$closes"); do
	jq -e -s --arg p "$p" 'any(.[]; .peer == $p)' <<<"$opens" >/dev/null || fail "close of $p, which never opened"
done
grep -q '"event":"stopping"' "$TMP/json.log" || fail "no stopping event at SIGTERM"

# Text, default level: "sluiced: " lines; the connection events are there.
start_logged "$TMP/text.log"
sl sources >/dev/null || fail "sluice sources failed"
for ((i = 0; i < 200; i++)); do
	grep -Eq ' closed: (closed by the client|read error: .+)$' "$TMP/text.log" && break
	sleep 0.05
done
stop_sluiced
grep -Eq '^sluiced: connection [0-9]+ opened from 127\.0\.0\.1:[0-9]+$' "$TMP/text.log" || fail "no text open event: $(cat "$TMP/text.log")"
# (A client that closes with a Ping unread resets the connection instead of closing it.)
grep -Eq '^sluiced: connection [0-9]+ from 127\.0\.0\.1:[0-9]+ closed: (closed by the client|read error: .+)$' "$TMP/text.log" ||
	fail "no text close event: $(cat "$TMP/text.log")"
! grep -q 'recovered source' "$TMP/text.log" || fail "a debug event at level info: $(cat "$TMP/text.log")"
grep -v '^sluiced: ' "$TMP/text.log" && fail "a text line without the sluiced: prefix (above)"

# --log-level warn: no info events, but still the listening line.
start_logged "$TMP/warn.log" --log-level warn
sl sources >/dev/null || fail "sluice sources failed"
stop_sluiced
grep -q '^sluiced: listening on 127.0.0.1:' "$TMP/warn.log" || fail "no listening line at level warn"
! grep -q 'connection' "$TMP/warn.log" || fail "info events at level warn: $(cat "$TMP/warn.log")"
[[ $(wc -l <"$TMP/warn.log") -eq 1 ]] || fail "level warn wrote more than the listening line: $(cat "$TMP/warn.log")"

# --log-level debug: the debug events too (the recovery of each fresh worker log, subscribes).
start_logged "$TMP/debug.log" --log-level debug --log-format json
sl tail --until 5 c >/dev/null || fail "sluice tail failed"
stop_sluiced
jq -e -s 'any(.[]; .level == "debug" and .event == "recovered" and .source == "c")' "$TMP/debug.log" >/dev/null ||
	fail "no debug recovery event at level debug: $(cat "$TMP/debug.log")"
jq -e -s 'any(.[]; .level == "debug" and .event == "subscribe" and .source == "c" and .worker == 0)' \
	"$TMP/debug.log" >/dev/null || fail "no debug subscribe event at level debug: $(cat "$TMP/debug.log")"

# Bad values are usage errors.
rc=0
"$SLUICED" --log-level loud 2>"$TMP/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "bad --log-level 'loud'" "$TMP/err" || fail "bad --log-level: status $rc, $(cat "$TMP/err")"
rc=0
"$SLUICED" --log-format xml 2>"$TMP/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "bad --log-format 'xml'" "$TMP/err" || fail "bad --log-format: status $rc, $(cat "$TMP/err")"
pass
