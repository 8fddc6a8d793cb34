#!/usr/bin/env bash
# A full disk stops only what it must.  The data directory is a 20 MiB tmpfs with 8 MiB taken
# by another file; a counter fills the rest.  While full: bounded and consolidated tails of what
# was published finish, ingest is refused with the reason, stat shows the blocked workers, and
# the condition is one log line per worker (not one per retry).  Once the file is removed the
# counter and a file source resume by themselves from where they stopped, and their output is
# exactly that of an undisturbed run (the counter is deterministic: same spec, same updates).
# Then a standby whose own disk fills while its primary keeps going: it serves what it has,
# resumes following once space returns, and ends identical to its primary.
source "$TESTLIB"

# mount_small DIR SIZE FILLER: a tmpfs of SIZE MiB with FILLER MiB taken by another file (status
# 77 where mounting is refused).
MOUNTS=()
mount_small() {
	mkdir -p "$1"
	if ! mount -t tmpfs -o "size=${2}m" tmpfs "$1" 2>/dev/null; then
		echo "SKIP ($TEST_NAME): cannot mount a tmpfs here"
		exit 77
	fi
	MOUNTS+=("$1")
	head -c $(($3 * 1024 * 1024)) /dev/zero >"$1/filler"
}
unmount_all() {
	local m
	for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
}
trap 'rc=$?; for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; sleep 0.2; unmount_all; (exit $rc); _cleanup' EXIT

COUNTER="c=counter,workers=2,max=200000,keep=100,errors=97"

# The undisturbed run, on the ordinary disk: what the counter must produce.
start_sluiced --segment-size 1048576 --source "$COUNTER"
sl tail c | sort >"$TMP/counter.want" || fail "the reference tail failed"
[[ $(wc -l <"$TMP/counter.want") -gt 200000 ]] || fail "the reference counter is short: $(wc -l <"$TMP/counter.want")"
stop_sluiced

# ---- a primary whose disk fills
mount_small "$TMP/small" 20 8
seq 1 30000 | sed 's/^/line-/' >"$TMP/input"
SLUICED_DATA_DIR="$TMP/small/data" start_sluiced --segment-size 1048576 --source "$COUNTER" \
	--source "f=file,path=$TMP/input" --source "in=ingest"
wait_lines "$SLUICED_LOG" 'source c worker [01]: appends blocked: No space left on device' 1
blocked_at=$(source_upper c)

# What was published is still served, with its progress: bounded tails finish.
sl tail --progress --until 10 c >"$TMP/t10" || fail "a bounded tail failed while the disk is full"
tail -n 1 "$TMP/t10" | grep -qx $'progress\t10' || fail "no progress to 10 while the disk is full: $(tail -n 3 "$TMP/t10")"
sl tail --consolidate --until 500 c >"$TMP/c500" || fail "a consolidated tail failed while the disk is full"
[[ -s $TMP/c500 ]] || fail "the consolidated tail printed nothing"
# Ingest is refused with the reason; stat shows the condition.
rc=0
printf 'x\n' | sl ingest in >/dev/null 2>"$TMP/ingest.err" || rc=$?
[[ $rc -eq 1 ]] && grep -qi 'no space' "$TMP/ingest.err" || fail "ingest while full: rc $rc, $(cat "$TMP/ingest.err")"
sl stat --json >"$TMP/stat.json" || fail "sluice stat --json failed while full"
jq -e '[.processes[0].workers[] | select(.source == "c" and .append_blocked)] | length >= 1' "$TMP/stat.json" >/dev/null ||
	fail "stat --json does not show c blocked: $(jq -c '.processes[0].workers' "$TMP/stat.json")"
sl stat --once >"$TMP/stat.txt" || fail "sluice stat --once failed while full"
grep -Eq '^appends blocked \(disk full or I/O error\):.* c/[01]' "$TMP/stat.txt" || fail "stat does not show c blocked: $(cat "$TMP/stat.txt")"
# More lines for the file source while full.
seq 30001 40000 | sed 's/^/line-/' >>"$TMP/input"

# Space returns: everything resumes by itself.
rm -f "$TMP/small/filler"
wait_upper c 999999999 # returns once closed
wait_lines "$SLUICED_LOG" 'source c worker [01]: appends resumed' 1
for ((i = 0; i < 300; i++)); do
	u=$(source_upper f)
	sl tail --consolidate --until "$u" f 2>/dev/null | cut -f2 | sort >"$TMP/file.have"
	[[ $(wc -l <"$TMP/file.have") -eq 40000 ]] && break
	sleep 0.2
done
sort "$TMP/input" | expect_diff /dev/stdin "$TMP/file.have" "the file source after the disk was full"
sl tail c | sort >"$TMP/counter.have" || fail "the tail of the resumed counter failed"
expect_diff "$TMP/counter.want" "$TMP/counter.have" "the counter across a full disk (blocked at upper $blocked_at)"
for w in 0 1; do
	[[ $(grep -c "source c worker $w: appends blocked" "$SLUICED_LOG") -le 1 ]] ||
		fail "worker $w's blocked condition was said more than once per start: $(grep -c "worker $w: appends blocked" "$SLUICED_LOG")"
done
printf 'after\n' | sl ingest in >/dev/null || fail "ingest after space returned failed"
sl stat --json | jq -e '[.processes[0].workers[] | select(.append_blocked)] | length == 0' >/dev/null ||
	fail "a worker is still shown blocked after space returned"
stop_sluiced

# ---- a standby whose own disk fills while its primary keeps going (paced, so the standby
# follows it time by time; the pace changes nothing of what the counter produces)
start_sluiced --segment-size 1048576 --source "$COUNTER,rate=40000"
PRIMARY=$SERVER PRIMARY_PID=$SLUICED_PID PRIMARY_LOG=$SLUICED_LOG
# The standby writes more than its primary (a block per event, a marker per frontier): room
# for all of it once the filler goes, 8 MiB until then.
mount_small "$TMP/small2" 32 24
SLUICED_DATA_DIR="$TMP/small2/data" start_sluiced --segment-size 1048576 --standby-of "$PRIMARY"
STANDBY=$SERVER
wait_lines "$SLUICED_LOG" 'source c worker [01]: appends blocked: No space left on device' 1
sl tail --progress --until 10 c >"$TMP/s10" || fail "a bounded tail of the full standby failed"
tail -n 1 "$TMP/s10" | grep -qx $'progress\t10' || fail "the full standby sent no progress to 10: $(tail -n 3 "$TMP/s10")"
(($(grep -c 'cannot apply an update' "$SLUICED_LOG") == 0)) || fail "the standby logged every retry: $(grep -c 'cannot apply' "$SLUICED_LOG") lines"
rm -f "$TMP/small2/filler"
wait_upper c 999999999 # returns once closed
sl tail c | sort >"$TMP/standby.have" || fail "the tail of the standby failed"
expect_diff "$TMP/counter.want" "$TMP/standby.have" "the standby across its full disk"
stop_sluiced
SERVER=$PRIMARY SLUICED_PID=$PRIMARY_PID SLUICED_LOG=$PRIMARY_LOG
stop_sluiced
pass
