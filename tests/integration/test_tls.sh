#!/usr/bin/env bash
# TLS on every connection: a CA, a server certificate for 127.0.0.1 and a client certificate are
# made with the openssl command; `sluice tail --tls-ca` prints exactly the counter's rows from a
# TLS sluiced; a plaintext client of a TLS server and a TLS client of a plaintext server each
# get one clear line and a non-zero exit within a few seconds (no hang); a server certificate
# from another CA fails verification; with --tls-client-ca (mutual TLS) a client without a
# certificate is refused and one with a certificate is served; and a standby follows a mutual
# TLS primary over TLS, presenting its own certificate.
source "$TESTLIB"

# Every sluiced is started with start_server and stopped with stop_all; the certificates are
# made by make_ca and make_cert (lib.sh).
make_ca ca
make_ca other
make_cert ca server 127.0.0.1 IP:127.0.0.1
make_cert ca client "sluice test client"
make_cert ca elsewhere 127.0.0.2 IP:127.0.0.2

CA=$PKI/ca.pem
SRV=(--tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key")
for i in $(seq 1 20); do printf 'ok\t%s\t1\n' "$i"; done | sort >"$TMP/expected"

# expect_refused NAME PATTERN WHAT: the client failed (not by timeout), quickly, saying PATTERN.
expect_refused() {
	[[ $RC -ne 0 ]] || fail "$3: exited 0"
	[[ $RC -ne 124 && $RC -ne 137 ]] || fail "$3: hung until the timeout"
	grep -q -- "$2" "$TMP/$1.err" || fail "$3: stderr says '$(cat "$TMP/$1.err")', expected '$2'"
	[[ $(wc -l <"$TMP/$1.err") -eq 1 ]] || fail "$3: more than one line on stderr: $(cat "$TMP/$1.err")"
}

# 1. A TLS server; a TLS tail prints exactly the counter's rows.
start_server "${SRV[@]}" --source "c=counter,workers=2,max=20" --source "big=counter,workers=4,max=200000"
T=$SERVER
run_client tail "$SLUICE" tail --server "$T" --tls-ca "$CA" --consolidate c
[[ $RC -eq 0 ]] || fail "TLS tail exited with $RC: $(cat "$TMP/tail.err")"
expect_diff "$TMP/expected" "$TMP/tail.out" "TLS tail"
run_client sources "$SLUICE" sources --server "$T" --tls-ca "$CA"
[[ $RC -eq 0 ]] || fail "TLS sources exited with $RC: $(cat "$TMP/sources.err")"
grep -q "^c	.*	counter	2	closed$" "$TMP/sources.out" || fail "TLS sources printed: $(cat "$TMP/sources.out")"
run_client stat "$SLUICE" stat --once --server "$T" --tls-ca "$CA"
[[ $RC -eq 0 ]] || fail "TLS stat exited with $RC: $(cat "$TMP/stat.err")"
grep -Eq '^c +0 +closed' "$TMP/stat.out" || fail "TLS stat printed: $(cat "$TMP/stat.out")"
run_client statplain "$SLUICE" stat --once --server "$T"
[[ $RC -eq 1 ]] && grep -q "requires TLS" "$TMP/statplain.err" ||
	fail "plaintext stat of a TLS server: exit $RC, said: $(cat "$TMP/statplain.err")"

# A few MB through TLS (many records per read, partial writes under flow control): exact.
run_client big "$SLUICE" tail --server "$T" --tls-ca "$CA" --consolidate big
[[ $RC -eq 0 ]] || fail "TLS tail of 200000 rows exited with $RC: $(cat "$TMP/big.err")"
seq 1 200000 | sed 's/^/ok\t/; s/$/\t1/' | sort >"$TMP/big.expected"
cmp -s "$TMP/big.expected" "$TMP/big.out" || fail "TLS tail of 200000 rows: $(wc -l <"$TMP/big.out") lines, not the expected ones"

# 1b. A TLS tail survives a restart of the TLS server: it reconnects (TLS handshake included)
# and resumes, printing every row exactly once.
start_server "${SRV[@]}" --source "r=counter,workers=2,max=200,rate=50"
R=$SERVER R_PID=$SLUICED_PID R_DATA=$SLUICED_DATA
bg timeout -k 5 60 "$SLUICE" tail --server "$R" --tls-ca "$CA" --retry-for 30 --consolidate r \
	>"$TMP/rtail.out" 2>"$TMP/rtail.err"
RTAIL=$BG_PID
for ((i = 0; i < 200; i++)); do # until the counter is under way (at most 10 s)
	u=$(timeout -k 5 30 "$SLUICE" sources --server "$R" --tls-ca "$CA" | awk -F'\t' '$1 == "r" { print $5 }')
	[[ $u != closed && ${u:-0} -ge 10 ]] && break
	sleep 0.05
done
[[ $u != closed && ${u:-0} -ge 10 ]] || fail "the counter was at '$u', not under way, before the kill"
kill -KILL "$R_PID"
wait "$R_PID" 2>/dev/null || true
unset 'ALL_SLUICED[${#ALL_SLUICED[@]}-1]'
SLUICED_DATA_DIR=$R_DATA start_server "${SRV[@]}" --source "r=counter,workers=2,max=200,rate=50" \
	--listen "$R"
unset SLUICED_DATA_DIR
[[ $SERVER == "$R" ]] || fail "the TLS server came back at $SERVER, not $R"
RC=0
wait "$RTAIL" || RC=$?
[[ $RC -eq 0 ]] || fail "the TLS tail across a restart exited with $RC: $(cat "$TMP/rtail.err")"
for i in $(seq 1 200); do printf 'ok\t%s\t1\n' "$i"; done | sort >"$TMP/rexpected"
expect_diff "$TMP/rexpected" "$TMP/rtail.out" "TLS tail across a restart"

# 2. A plaintext client of the TLS server: a clear refusal, not a hang.
start=$SECONDS
run_client plain "$SLUICE" tail --server "$T" --consolidate c
expect_refused plain "this server requires TLS" "plaintext tail of a TLS server"
((SECONDS - start < 15)) || fail "plaintext tail of a TLS server took $((SECONDS - start)) s"

# 3. A certificate from another CA fails verification.
run_client wrongca "$SLUICE" tail --server "$T" --tls-ca "$PKI/other.pem" --consolidate c
expect_refused wrongca "certificate verify failed" "tail with the wrong CA"

# 4. A TLS client of a plaintext server: a clear refusal, not a hang.
start_server --source "c=counter,workers=2,max=20"
start=$SECONDS
run_client notls "$SLUICE" tail --server "$SERVER" --tls-ca "$CA" --consolidate c
expect_refused notls "does not speak TLS" "TLS tail of a plaintext server"
((SECONDS - start < 15)) || fail "TLS tail of a plaintext server took $((SECONDS - start)) s"
# and the plaintext server still serves plaintext clients
run_client plainok "$SLUICE" tail --server "$SERVER" --consolidate c
[[ $RC -eq 0 ]] || fail "plaintext tail exited with $RC: $(cat "$TMP/plainok.err")"
expect_diff "$TMP/expected" "$TMP/plainok.out" "plaintext tail"

# A server whose certificate (from the right CA) names another address is refused too.
start_server --tls-cert "$PKI/elsewhere.pem" --tls-key "$PKI/elsewhere.key" --source "c=counter,max=1"
run_client elsewhere "$SLUICE" sources --server "$SERVER" --tls-ca "$CA"
expect_refused elsewhere "certificate verify failed: IP address mismatch" \
	"sources of a server whose certificate names 127.0.0.2"

# 5. Mutual TLS: no client certificate, refused; with one, served.
start_server "${SRV[@]}" --tls-client-ca "$CA" --source "c=counter,workers=2,max=20"
M=$SERVER M_PID=$SLUICED_PID M_LOG=$SLUICED_LOG
run_client nocert "$SLUICE" tail --server "$M" --tls-ca "$CA" --consolidate c
[[ $RC -ne 0 && $RC -ne 124 && $RC -ne 137 ]] || fail "tail without a client certificate exited with $RC"
grep -q "TLS" "$TMP/nocert.err" || fail "tail without a client certificate said: $(cat "$TMP/nocert.err")"
for ((i = 0; i < 100; i++)); do # the server reports it too (bounded: 5 s)
	grep -q "TLS handshake with a client failed" "$M_LOG" && break
	sleep 0.05
done
grep -q "TLS handshake with a client failed" "$M_LOG" || fail "the mTLS server did not report the refused client: $(cat "$M_LOG")"
run_client withcert "$SLUICE" tail --server "$M" --tls-ca "$CA" --tls-cert "$PKI/client.pem" \
	--tls-key "$PKI/client.key" --consolidate c
[[ $RC -eq 0 ]] || fail "mTLS tail exited with $RC: $(cat "$TMP/withcert.err")"
expect_diff "$TMP/expected" "$TMP/withcert.out" "mTLS tail"

# 6. A standby follows the mutual TLS primary, presenting its own (server) certificate, and
# serves TLS itself.
start_server --standby-of "$M" "${SRV[@]}" --tls-ca "$CA"
S=$SERVER S_PID=$SLUICED_PID S_LOG=$SLUICED_LOG
u=
for ((i = 0; i < 300; i++)); do
	kill -0 "$S_PID" 2>/dev/null || fail "the standby died: $(tail -n 20 "$S_LOG")"
	u=$(timeout -k 5 30 "$SLUICE" sources --server "$S" --tls-ca "$CA" 2>/dev/null |
		awk -F'\t' '$1 == "c" { print $5 }') || true
	[[ $u == closed ]] && break
	sleep 0.1
done
[[ $u == closed ]] || fail "the standby did not follow the TLS primary to the end within 30 s (upper '$u'): $(tail -n 20 "$S_LOG")"
run_client standby "$SLUICE" tail --server "$S" --tls-ca "$CA" --consolidate c
[[ $RC -eq 0 ]] || fail "tail of the standby exited with $RC: $(cat "$TMP/standby.err")"
expect_diff "$TMP/expected" "$TMP/standby.out" "tail of the TLS standby"

stop_all
pass
