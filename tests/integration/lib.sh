# shellcheck shell=bash
# lib.sh - helpers for the shell integration tests (sourced, not run).
#
# The tests run real sluiced and sluice processes on 127.0.0.1.  sluiced listens on port 0 and
# prints the port the kernel picked ("sluiced: listening on 127.0.0.1:PORT"), so no test ever
# guesses a free port.  Every wait is bounded (a poll loop with a deadline, or coreutils'
# timeout), and every background process is killed by the EXIT trap.
#
# Environment (set by tests/CMakeLists.txt): SLUICED, SLUICE (the programs), TESTLIB (this file).

set -euo pipefail

: "${SLUICED:?SLUICED must point to the sluiced binary}"
: "${SLUICE:?SLUICE must point to the sluice binary}"
export LC_ALL=C

TEST_NAME=$(basename "${0%.sh}")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-${TEST_NAME}.XXXXXX")
BG_PIDS=()
SERVER=
SLUICED_PID=
SLUICED_LOG=
_SLUICED_N=0

# kill_bounded PID: SIGTERM, up to 10 s of grace, then SIGKILL.  Returns the exit status.
kill_bounded() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "note: pid $pid ignored SIGTERM for 10 s; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	local rc=0
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

_cleanup() {
	local rc=$? pid
	trap - EXIT
	for pid in "${BG_PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill_bounded "$pid" || true
		fi
	done
	if [[ $rc -ne 0 && -d $TMP ]]; then
		local f
		for f in "$TMP"/sluiced.*.log; do
			[[ -s $f ]] || continue
			echo "---- $f" >&2
			tail -n 30 "$f" >&2
		done
	fi
	if [[ -n ${SLUICE_TEST_KEEP:-} ]]; then
		echo "kept $TMP (SLUICE_TEST_KEEP)" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
	echo "FAIL ($TEST_NAME): $*" >&2
	exit 1
}

pass() {
	echo "PASS ($TEST_NAME)${1:+: $1}"
}

# bg CMD...: runs CMD in the background, killed at exit.  Sets BG_PID.
bg() {
	"$@" &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# start_sluiced [ARGS...]: starts sluiced on an ephemeral port with its own data dir and waits
# (at most 20 s) for its "listening on" line.  Sets SERVER (127.0.0.1:PORT), SLUICED_PID,
# SLUICED_LOG and SLUICED_DATA.  Extra ARGS (--source ...) are passed on.
start_sluiced() {
	_SLUICED_N=$((_SLUICED_N + 1))
	SLUICED_LOG="$TMP/sluiced.$_SLUICED_N.log"
	SLUICED_DATA="${SLUICED_DATA_DIR:-$TMP/data.$_SLUICED_N}"
	: >"$SLUICED_LOG"
	bg "$SLUICED" --listen 127.0.0.1:0 --data-dir "$SLUICED_DATA" "$@" 2>"$SLUICED_LOG"
	SLUICED_PID=$BG_PID
	local i port=
	for ((i = 0; i < 400; i++)); do
		port=$(sed -n 's/^sluiced: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SLUICED_LOG")
		[[ -n $port ]] && break
		if ! kill -0 "$SLUICED_PID" 2>/dev/null; then
			fail "sluiced exited at start: $(cat "$SLUICED_LOG")"
		fi
		sleep 0.05
	done
	[[ -n $port ]] || fail "sluiced printed no 'listening on' line within 20 s"
	[[ $port != 0 ]] || fail "sluiced reported port 0 instead of the bound port"
	SERVER="127.0.0.1:$port"
}

# stop_sluiced: SIGTERM the current sluiced and check that it exited with status 0.
stop_sluiced() {
	local rc=0
	kill_bounded "$SLUICED_PID" || rc=$?
	[[ $rc -eq 0 ]] || fail "sluiced exited with status $rc on SIGTERM: $(tail -n 20 "$SLUICED_LOG")"
}

# sl ARGS...: runs `sluice ARGS` against $SERVER, bounded to 120 s.
sl() {
	local cmd=$1
	shift
	timeout -k 5 120 "$SLUICE" "$cmd" --server "$SERVER" "$@"
}

# source_upper NAME: the UPPER column of `sluice sources` for NAME.
source_upper() {
	sl sources | awk -F'\t' -v n="$1" '$1 == n { print $5 }'
}

# wait_upper NAME MIN: waits (at most 30 s) until NAME's upper is >= MIN or closed.
wait_upper() {
	local name=$1 min=$2 i u
	for ((i = 0; i < 300; i++)); do
		kill -0 "$SLUICED_PID" 2>/dev/null || fail "sluiced died: $(tail -n 20 "$SLUICED_LOG")"
		u=$(source_upper "$name") || fail "sluice sources failed while waiting for $name"
		if [[ $u == closed ]] || [[ -n $u && $u -ge $min ]]; then
			return 0
		fi
		sleep 0.1
	done
	fail "source $name did not reach upper $min within 30 s (last: '$u')"
}

# expect_diff EXPECTED ACTUAL WHAT: compares two files, shows the first differences.
expect_diff() {
	if ! diff -u "$1" "$2" >"$TMP/diff.out"; then
		head -n 40 "$TMP/diff.out" >&2
		fail "$3: output differs from the expected (diff above)"
	fi
}

# start_server ARGS...: start_sluiced, remembered so that stop_all stops it.
ALL_SLUICED=()
start_server() {
	start_sluiced "$@"
	ALL_SLUICED+=("$SLUICED_PID:$SLUICED_LOG")
}

# stop_all: SIGTERMs every sluiced start_server started, the last first (standbys before their
# primaries), and fails unless each exits with status 0 (under ASan: no leak report).
stop_all() {
	local e rc i
	for ((i = ${#ALL_SLUICED[@]} - 1; i >= 0; i--)); do
		e=${ALL_SLUICED[i]}
		rc=0
		kill_bounded "${e%%:*}" || rc=$?
		[[ $rc -eq 0 ]] || fail "sluiced ${e%%:*} exited with $rc: $(tail -n 30 "${e#*:}")"
	done
}

# run_client NAME CMD...: runs CMD (stdin closed) bounded to 30 s; sets RC; its stdout and
# stderr are in $TMP/NAME.out and $TMP/NAME.err.
run_client() {
	local name=$1
	shift
	RC=0
	timeout -k 5 30 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null || RC=$?
}

# wait_lines FILE REGEX [COUNT]: waits (at most 60 s) until FILE has COUNT (default 1) lines
# matching the extended REGEX.
wait_lines() {
	local i n=${3:-1}
	for ((i = 0; i < 600; i++)); do
		(($(grep -Ec -- "$2" "$1" 2>/dev/null || true) >= n)) && return 0
		sleep 0.1
	done
	fail "fewer than $n lines matching '$2' in $1 within 60 s: $(tail -n 5 "$1" 2>/dev/null)"
}

# wait_log FILE REGEX SECONDS: waits (at most SECONDS) for a line of FILE matching the extended
# REGEX; on failure shows FILE's last lines but its connection open/close notices.
wait_log() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "no line /$2/ in $1 within $3 s: $(grep -v ': connection ' "$1" 2>/dev/null | tail -n 15)"
}

# Test certificates, made with the openssl command in $PKI ($TMP/pki).
PKI=$TMP/pki
ossl() {
	mkdir -p "$PKI"
	openssl "$@" >>"$PKI/openssl.log" 2>&1 || fail "openssl $1 failed: $(tail -n 5 "$PKI/openssl.log")"
}
# make_ca NAME: a CA, $PKI/NAME.pem and .key.
make_ca() {
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-keyout "$PKI/$1.key" -out "$PKI/$1.pem" -subj "/CN=sluice test $1" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# make_cert CA NAME CN [SAN]: a certificate signed by CA, $PKI/NAME.pem and .key.
make_cert() {
	ossl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$PKI/$2.key" -out "$PKI/$2.csr" -subj "/CN=$3"
	printf 'basicConstraints=CA:FALSE\n%s' "${4:+subjectAltName=$4
}" >"$PKI/$2.ext"
	ossl x509 -req -in "$PKI/$2.csr" -CA "$PKI/$1.pem" -CAkey "$PKI/$1.key" -CAcreateserial \
		-days 2 -out "$PKI/$2.pem" -extfile "$PKI/$2.ext"
}
