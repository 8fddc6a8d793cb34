#!/usr/bin/env bash
# SIGHUP reloads the credentials without dropping a connection: a new token file and a new TLS
# certificate and key (same file names) take effect for new connections, while a tail opened
# before keeps streaming; a bad new file is refused with a log line and the old set is kept.
source "$TESTLIB"

make_ca ca
make_ca ca2
make_cert ca server 127.0.0.1 IP:127.0.0.1
make_cert ca2 server2 127.0.0.1 IP:127.0.0.1
mkdir -p "$TMP/live"
cp "$PKI/server.pem" "$TMP/live/cert.pem"
cp "$PKI/server.key" "$TMP/live/key.pem"
printf 'first-token\n' >"$TMP/live/token"
printf 'second-token\n' >"$TMP/token2"
printf 'first-token\n' >"$TMP/token1"
chmod 600 "$TMP/live/token" "$TMP/token1" "$TMP/token2"

start_sluiced --tls-cert "$TMP/live/cert.pem" --tls-key "$TMP/live/key.pem" \
	--auth-token-file "$TMP/live/token" --source "c=counter,rate=200"
# client CA TOKENFILE: sluice sources over TLS with that CA and token; sets RC.
client() { run_client sources "$SLUICE" sources --server "$SERVER" --tls-ca "$1" --auth-token-file "$2"; }

client "$PKI/ca.pem" "$TMP/token1"
[[ $RC -eq 0 ]] || fail "the first credentials do not work: $(cat "$TMP/sources.err")"
# A tail that lives through the reloads.
bg timeout -k 5 120 "$SLUICE" tail --server "$SERVER" --tls-ca "$PKI/ca.pem" --auth-token-file "$TMP/token1" c \
	>"$TMP/tail.out" 2>"$TMP/tail.err"
TAIL_PID=$BG_PID
for ((i = 0; i < 400; i++)); do [[ -s $TMP/tail.out ]] && break; sleep 0.05; done
[[ -s $TMP/tail.out ]] || fail "the tail got nothing"

# New token and new certificate (another CA), same file names; SIGHUP.
cp "$TMP/token2" "$TMP/live/token"
cp "$PKI/server2.pem" "$TMP/live/cert.pem"
cp "$PKI/server2.key" "$TMP/live/key.pem"
kill -HUP "$SLUICED_PID"
wait_lines "$SLUICED_LOG" 'SIGHUP: reloaded the token and TLS certificate'
client "$PKI/ca2.pem" "$TMP/token2"
[[ $RC -eq 0 ]] || fail "the new credentials do not work after SIGHUP: $(cat "$TMP/sources.err")"
client "$PKI/ca2.pem" "$TMP/token1"
[[ $RC -ne 0 ]] && grep -q 'wrong token' "$TMP/sources.err" || fail "the old token still works after SIGHUP (rc $RC): $(cat "$TMP/sources.err")"
client "$PKI/ca.pem" "$TMP/token2"
[[ $RC -ne 0 ]] || fail "the old certificate is still served after SIGHUP"
n1=$(wc -l <"$TMP/tail.out")
for ((i = 0; i < 400; i++)); do (($(wc -l <"$TMP/tail.out") > n1 + 10)) && break; sleep 0.05; done
(($(wc -l <"$TMP/tail.out") > n1 + 10)) || fail "the tail opened before the reload stopped: $(cat "$TMP/tail.err")"
kill -0 "$TAIL_PID" || fail "the tail opened before the reload exited: $(cat "$TMP/tail.err")"

# Bad new files: a token file others may read, then a certificate that is not one. Each is
# refused with a line and the second set keeps working.
chmod 644 "$TMP/live/token"
kill -HUP "$SLUICED_PID"
wait_lines "$SLUICED_LOG" 'SIGHUP: kept the old token and certificate: .*token'
chmod 600 "$TMP/live/token"
echo "not a certificate" >"$TMP/live/cert.pem"
kill -HUP "$SLUICED_PID"
for ((i = 0; i < 400; i++)); do
	(($(grep -c 'SIGHUP: kept the old' "$SLUICED_LOG") >= 2)) && break
	sleep 0.05
done
(($(grep -c 'SIGHUP: kept the old' "$SLUICED_LOG") >= 2)) || fail "a bad certificate was not refused: $(tail -n 3 "$SLUICED_LOG")"
client "$PKI/ca2.pem" "$TMP/token2"
[[ $RC -eq 0 ]] || fail "a refused reload changed the credentials: $(cat "$TMP/sources.err")"
kill -0 "$TAIL_PID" || fail "the tail died across the refused reloads: $(cat "$TMP/tail.err")"
kill_bounded "$TAIL_PID" || true
stop_sluiced
pass
