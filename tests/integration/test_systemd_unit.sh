#!/usr/bin/env bash
# The systemd unit that `cmake --install` puts in lib/systemd/system: systemd accepts it
# (systemd-analyze verify), its hardening rates "OK" or better offline (exposure <= 2.0 of 10),
# and its ExecStart line, run as written with a config file like the one it names, starts a
# serving sluiced.  (Readiness and the watchdog over NOTIFY_SOCKET: test_notify.sh.)
source "$TESTLIB"
: "${BUILD_DIR:?}"

unit=$BUILD_DIR/sluiced.service
[[ -f $unit ]] || fail "the build wrote no sluiced.service"
grep -q '^Type=notify$' "$unit" || fail "the unit is not Type=notify"
grep -q '^WatchdogSec=' "$unit" || fail "the unit sets no watchdog"

# verify resolves ExecStart's binary: point it at the one just built.
sed "s|^ExecStart=[^ ]*|ExecStart=$SLUICED|" "$unit" >"$TMP/sluiced.service"
systemd-analyze verify --man=no "$TMP/sluiced.service" >"$TMP/verify" 2>&1 ||
	fail "systemd-analyze verify refuses the unit: $(cat "$TMP/verify")"
[[ ! -s $TMP/verify ]] || fail "systemd-analyze verify warns: $(cat "$TMP/verify")"
systemd-analyze security --offline=yes "$TMP/sluiced.service" >"$TMP/security" 2>&1 ||
	fail "systemd-analyze security failed: $(tail -3 "$TMP/security")"
exposure=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$TMP/security")
[[ -n $exposure ]] || fail "no exposure level in: $(tail -3 "$TMP/security")"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "the unit's exposure is $exposure (> 2.0): $(grep '✗' "$TMP/security")"

# ExecStart as written, with its config and data directory moved into the test's folder.
exec_line=$(sed -n 's/^ExecStart=//p' "$TMP/sluiced.service")
exec_line=${exec_line//\/etc\/sluice\/sluiced.conf/$TMP/sluiced.conf}
exec_line=${exec_line//\/var\/lib\/sluice/$TMP/data}
printf 'listen = 127.0.0.1:0\nsource = c=counter,max=10\n' >"$TMP/sluiced.conf"
read -r -a cmd <<<"$exec_line"
log=$TMP/sluiced.1.log
bg "${cmd[@]}" 2>"$log"
SLUICED_PID=$BG_PID
SLUICED_LOG=$log
for ((i = 0; i < 400; i++)); do
	SERVER=$(sed -n 's/^sluiced: listening on //p' "$log")
	[[ -n $SERVER ]] && break
	kill -0 "$SLUICED_PID" 2>/dev/null || fail "the unit's ExecStart exited: $(cat "$log")"
	sleep 0.05
done
[[ -n $SERVER ]] || fail "the unit's ExecStart printed no 'listening on' line"
wait_upper c 11
stop_sluiced
pass
