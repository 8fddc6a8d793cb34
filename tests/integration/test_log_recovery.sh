#!/usr/bin/env bash
# The durable log at start-up: a segment cut mid-record recovers everything before the cut (and
# the source produces the rest again); a byte flipped inside a segment makes sluiced refuse to
# start, naming the file, and leaves every file as it was.
source "$TESTLIB"

SPEC="c=counter,workers=1,max=3000"
export SLUICED_DATA_DIR="$TMP/data"
start_sluiced --source "$SPEC"
sl tail --consolidate --until 3001 c >"$TMP/expected" || fail "first tail failed"
stop_sluiced
seg="$SLUICED_DATA_DIR/sources/c/0/ok/0000000000000000.seg"
[[ -f $seg ]] || fail "no segment file at $seg"

# Find where the written part ends (the segment is preallocated: trailing bytes are zero),
# then cut 7 bytes into the last record by zeroing from there on.
used=$(od -An -v -tu1 -w1 "$seg" | awk '$1 != 0 { last = NR } END { print last }')
[[ $used -gt 100 ]] || fail "segment looks empty ($used bytes used)"
dd if=/dev/zero of="$seg" bs=1 seek=$((used - 7)) count=7 conv=notrunc status=none
start_sluiced --source "$SPEC"
grep -q "torn tail" "$SLUICED_LOG" || fail "no notice of the truncated torn tail: $(cat "$SLUICED_LOG")"
sl tail --consolidate --until 3001 c >"$TMP/out" || fail "tail after the torn tail failed"
expect_diff "$TMP/expected" "$TMP/out" "after recovering a torn tail"
stop_sluiced

# A byte flipped in the middle of the segment: refused, with the file named.
off=$((used / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$seg" | tr -d ' ')
printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$seg" bs=1 seek="$off" conv=notrunc status=none
before=$(md5sum "$seg")
rc=0
timeout 20 "$SLUICED" --listen 127.0.0.1:0 --data-dir "$SLUICED_DATA_DIR" --source "$SPEC" \
	2>"$TMP/refused.log" || rc=$?
[[ $rc -ne 0 ]] || fail "sluiced started on a corrupt log"
[[ $rc -ne 124 ]] || fail "sluiced kept running on a corrupt log"
grep -q "0000000000000000.seg" "$TMP/refused.log" || fail "the error does not name the file: $(cat "$TMP/refused.log")"
[[ $(wc -l <"$TMP/refused.log") -eq 1 ]] || fail "expected a one-line error: $(cat "$TMP/refused.log")"
[[ $(md5sum "$seg") == "$before" ]] || fail "the corrupt segment was modified"
echo "refused with: $(cat "$TMP/refused.log")"
pass
