#!/usr/bin/env bash
# sluiced under a service manager (systemd's Type=notify, as the unit in contrib/ runs it): the
# messages arrive on the socket NOTIFY_SOCKET names, the way systemd would read them. STATUS=
# while recovering, READY=1 only once it listens, WATCHDOG=1 at half of WATCHDOG_USEC,
# STOPPING=1 on SIGTERM.  Also --log-file and its reopening on SIGHUP (logrotate's way).
source "$TESTLIB"

sock=$TMP/notify.sock
msgs=$TMP/notify.msgs
: >"$msgs"
# One line per datagram; a message's own newlines become '|'.
bg python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(65536).decode().replace("\n", "|") + "\n")
        f.flush()
' "$sock" "$msgs"
for ((i = 0; i < 200; i++)); do
	[[ -S $sock ]] && break
	sleep 0.05
done
[[ -S $sock ]] || fail "the test's notify socket did not appear"


log=$TMP/sluiced.log
NOTIFY_SOCKET=$sock WATCHDOG_USEC=400000 bg "$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/data" \
	--source "c=counter,max=100" --log-file "$log"
pid=$BG_PID
wait_lines "$msgs" '^READY=1\|STATUS=serving 1 source on 127\.0\.0\.1:[0-9]+$'
grep -q '^sluiced: listening on 127\.0\.0\.1:[0-9]*$' "$log" || fail "--log-file holds no 'listening on' line: $(cat "$log")"
SERVER=$(sed -n 's/^sluiced: listening on //p' "$log")
# Order: recovering before ready; nothing says READY before the port is open.
first_ready=$(grep -n '^READY=1' "$msgs" | head -1 | cut -d: -f1)
recovering=$(grep -n '^STATUS=recovering the data directory ' "$msgs" | head -1 | cut -d: -f1)
[[ -n $recovering && $recovering -lt $first_ready ]] || fail "no STATUS=recovering before READY=1: $(cat "$msgs")"
sl sources >/dev/null || fail "READY=1 was sent but sluiced does not answer"
# The watchdog: at half of 400 ms, so several pings soon; they keep coming.
wait_lines "$msgs" '^WATCHDOG=1$'
n1=$(grep -c '^WATCHDOG=1$' "$msgs")
for ((i = 0; i < 400; i++)); do
	(($(grep -c '^WATCHDOG=1$' "$msgs") >= n1 + 3)) && break
	sleep 0.05
done
(($(grep -c '^WATCHDOG=1$' "$msgs") >= n1 + 3)) || fail "the watchdog pings stopped: $(cat "$msgs")"

# logrotate: move the file away, SIGHUP, a new file appears and gets the log from then on.
mv "$log" "$log.1"
kill -HUP "$pid"
for ((i = 0; i < 400; i++)); do
	[[ -s $log ]] && break
	sleep 0.05
done
grep -q 'SIGHUP: reopened log file' "$log" || fail "SIGHUP did not reopen the log file: $(cat "$log" 2>/dev/null)"
# A path that cannot be opened: the old file is kept and says so; sluiced keeps serving.
mv "$log" "$log.2"
mkdir "$log"
kill -HUP "$pid"
for ((i = 0; i < 400; i++)); do
	grep -q 'cannot reopen log file' "$log.2" && break
	sleep 0.05
done
grep -q 'cannot reopen log file .*still writing to the old one' "$log.2" || fail "no line about the failed reopen: $(cat "$log.2")"
kill -0 "$pid" || fail "sluiced died on a SIGHUP it could not honour"
sl sources >/dev/null || fail "sluiced stopped answering after a failed reopen"

kill -TERM "$pid"
wait_lines "$msgs" '^STOPPING=1\|STATUS=stopping'
rc=0
wait "$pid" || rc=$?
[[ $rc -eq 0 ]] || fail "sluiced exited with $rc after SIGTERM"
grep -q 'SIGTERM: stopping' "$log.2" || fail "the stop was not logged in the kept file"

# Without NOTIFY_SOCKET nothing of this is sent (and nothing breaks): a plain start still works.
start_sluiced --source "d=counter,max=3"
wait_upper d 4
stop_sluiced
pass
