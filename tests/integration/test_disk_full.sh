#!/usr/bin/env bash
# A full disk: ingest fails with a clear error to the client, every batch acknowledged before is
# still there, and once space returns ingest works again.  The data directory is a small tmpfs
# mounted by the test (root only: skipped with status 77 where mounting is not allowed).
source "$TESTLIB"

small="$TMP/small"
mkdir -p "$small"
if ! mount -t tmpfs -o size=3m tmpfs "$small" 2>/dev/null; then
	echo "SKIP ($TEST_NAME): cannot mount a tmpfs here"
	exit 77
fi
unmount_small() { umount "$small" 2>/dev/null || true; }
trap 'unmount_small; _cleanup' EXIT
# A filler takes part of the space; deleting it later is "space returns".
head -c $((1024 * 1024)) /dev/zero >"$small/filler"

export SLUICED_DATA_DIR="$small/data"
start_sluiced --segment-size 131072 --source "in=ingest,workers=1"

row=$(head -c 100 /dev/zero | tr '\0' 'r')
acked=0 failed=0
for ((b = 1; b <= 60; b++)); do
	seq 1 500 | sed "s/^/$b-$row-/" >"$TMP/batch"
	rc=0
	t=$(sl ingest in <"$TMP/batch" 2>"$TMP/err") || rc=$?
	if [[ $rc -ne 0 ]]; then
		failed=1
		break
	fi
	acked=$b
	last_t=$t
	cat "$TMP/batch" >>"$TMP/acked"
done
[[ $failed -eq 1 ]] || fail "60 batches fit into 3 MiB: the disk never filled"
[[ $acked -gt 0 ]] || fail "not even the first batch was accepted: $(cat "$TMP/err")"
grep -qi "no space" "$TMP/err" || fail "the error does not say the disk is full: $(cat "$TMP/err")"
[[ $(wc -l <"$TMP/err") -eq 1 ]] || fail "the error is not one line: $(cat "$TMP/err")"
echo "disk full after $acked batches: $(cat "$TMP/err")"

# Everything acknowledged is there, and nothing of the failed batch.
sl tail --consolidate --until $((last_t + 1)) in | cut -f2 | sort >"$TMP/have"
sort "$TMP/acked" >"$TMP/want"
expect_diff "$TMP/want" "$TMP/have" "rows after the disk filled"
[[ $(source_upper in) == $((last_t + 1)) ]] || fail "the failed batch moved the upper to $(source_upper in)"

# Space returns: the next batch is accepted and reads back.
rm -f "$small/filler"
t=$(printf 'after-1\nafter-2\n' | sl ingest in) || fail "ingest after freeing space failed: $?"
sl tail --from "$t" --until $((t + 1)) in | cut -f4 | sort >"$TMP/after"
printf 'after-1\nafter-2\n' | expect_diff /dev/stdin "$TMP/after" "rows ingested after space returned"
stop_sluiced
pass
