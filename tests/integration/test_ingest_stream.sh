#!/usr/bin/env bash
# sluice ingest --stream: a large input arrives whole and once, with one increasing time per
# batch printed; the producer's memory stays bounded (VmHWM <= 64 MiB for 300 MB of input); the
# linger commits a slow trickle before EOF; a bad line (client side, or refused by storage) leaves
# exactly the batches before it committed and printed, with `line L: reason` and exit status 1.
source "$TESTLIB"

start_sluiced --source "in=ingest,workers=3" --source "small=ingest,workers=2" --max-row 1000

# ---- a large input: 3 M rows of 100 bytes (300 MB) ----
awk 'BEGIN { pad = sprintf("%91s", ""); gsub(/ /, "x", pad);
             for (i = 0; i < 3000000; i++) printf "%08d:%s\n", i, pad }' >"$TMP/big"
[[ $(stat -c %s "$TMP/big") -eq 303000000 ]] || fail "the generated input is not 300 MB"
# Under AddressSanitizer the peak also holds shadow memory, the runtime's own and the freed
# blocks it quarantines: the bound there is 96 MiB with a small quarantine, still far below the
# input (a client that kept its input would pass 300 MB).
limit_kib=65536
if nm "$SLUICE" 2>/dev/null | grep -c __asan_init >/dev/null; then
	limit_kib=98304
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
fi
/usr/bin/time -f '%M' -o "$TMP/big.rss" timeout -k 5 300 "$SLUICE" ingest --server "$SERVER" \
	--stream in <"$TMP/big" >"$TMP/big.times" 2>"$TMP/big.err" ||
	fail "ingest --stream of 300 MB exited with $? ($(cat "$TMP/big.err"))"
rss_kib=$(tail -n 1 "$TMP/big.rss")
((rss_kib <= limit_kib)) || fail "ingest --stream peaked at $rss_kib KiB for 300 MB of input (> $limit_kib KiB)"
echo "ingest --stream peak: $rss_kib KiB for 300 MB of input"
# one time per batch: 3 M rows / 65536 per batch = 46 batches at least (more if the linger cut some)
nb=$(wc -l <"$TMP/big.times")
((nb >= 46)) || fail "only $nb times printed for 3 M rows at 65536 rows per batch"
grep -Evq '^[0-9]+$' "$TMP/big.times" && fail "a printed line is not a time: $(grep -Ev '^[0-9]+$' "$TMP/big.times" | head -n 1)"
sort -n -c -u "$TMP/big.times" || fail "the printed times are not strictly increasing"
last=$(tail -n 1 "$TMP/big.times")
# each time printed was acknowledged: the source's upper is past the last one already
u=$(source_upper in)
((u > last)) || fail "the source's upper $u is not past the last printed time $last"
sl tail --until $((last + 1)) in | cut -f4 >"$TMP/big.tail" || fail "tail exited with $?"
sort "$TMP/big.tail" | cmp -s - "$TMP/big" || fail "tail did not read back exactly the 3 M rows, once each"
rm -f "$TMP/big" "$TMP/big.tail"

# ---- the linger commits a slow trickle: a time for each line before EOF ----
mkfifo "$TMP/fifo"
exec 3<>"$TMP/fifo" # the writer end is open first, so opening the reader does not block
# (not through bg: an asynchronous command's own redirection keeps bash from giving it /dev/null)
timeout -k 5 120 "$SLUICE" ingest --server "$SERVER" --stream --linger-ms 20 in \
	<"$TMP/fifo" >"$TMP/trickle.out" 2>"$TMP/trickle.err" 3>&- &
trickle_pid=$!
BG_PIDS+=("$trickle_pid")
echo "trickle-1" >&3
wait_lines "$TMP/trickle.out" '^[0-9]+$' 1
echo "trickle-2" >&3
wait_lines "$TMP/trickle.out" '^[0-9]+$' 2
exec 3>&-
rc=0
wait "$trickle_pid" || rc=$?
((rc == 0)) || fail "trickle ingest exited with $rc: $(cat "$TMP/trickle.err")"
[[ $(wc -l <"$TMP/trickle.out") -eq 2 ]] || fail "trickle printed $(wc -l <"$TMP/trickle.out") times, expected 2"
t2=$(tail -n 1 "$TMP/trickle.out")
t1=$(head -n 1 "$TMP/trickle.out")
sl tail --from "$t1" --until $((t2 + 1)) in | cut -f2,4 | sort >"$TMP/trickle.tail"
printf '%s\ttrickle-1\n%s\ttrickle-2\n' "$t1" "$t2" >"$TMP/trickle.expected"
expect_diff "$TMP/trickle.expected" "$TMP/trickle.tail" "the trickle's rows at their printed times"

# expect_partial WHAT SOURCE INPUT LINE NBATCHES ROWS ARGS...: ingest --stream of INPUT fails with
# `line LINE: ...` (exit 1) after printing NBATCHES times, and SOURCE then holds exactly the
# first ROWS lines of INPUT (nothing of the batch holding the bad line or after it).
expect_partial() {
	local what=$1 src=$2 input=$3 line=$4 nbatches=$5 rows=$6 rc=0 from
	shift 6
	from=$(source_upper "$src")
	timeout -k 5 60 "$SLUICE" ingest --server "$SERVER" --stream "$@" "$src" <"$input" \
		>"$TMP/part.out" 2>"$TMP/part.err" || rc=$?
	((rc == 1)) || fail "$what: exit status $rc, expected 1 ($(cat "$TMP/part.err"))"
	grep -Eq "^line $line: " "$TMP/part.err" || fail "$what: stderr '$(cat "$TMP/part.err")' does not name line $line"
	[[ $(wc -l <"$TMP/part.out") -eq $nbatches ]] ||
		fail "$what: $(wc -l <"$TMP/part.out") times printed, expected $nbatches"
	# wait out anything still arriving: a later batch would have to be committed by now
	local last
	last=$(tail -n 1 "$TMP/part.out")
	sl tail --from "$from" --until $((last + 1)) "$src" | cut -f4 | sort >"$TMP/part.tail"
	head -n "$rows" "$input" | sort >"$TMP/part.expected"
	expect_diff "$TMP/part.expected" "$TMP/part.tail" "$what: the rows committed"
	# and nothing after them: the upper moved only by the printed batches
	[[ $(source_upper "$src") -eq $((last + 1)) ]] ||
		fail "$what: upper $(source_upper "$src") after the last printed time $last"
}

# a bad escape at line 251, batches of 100 rows: batches 1-2 committed, 201-250 dropped
{
	seq -f 'row-%g' 1 250
	printf 'bad\\qrow\n'
	seq -f 'after-%g' 1 300
} >"$TMP/bad"
expect_partial "bad escape mid-stream" in "$TMP/bad" 251 2 200 --batch-rows 100 --linger-ms 600000

# an oversized row (over SL_ROW_MAX) at line 5, batches of 2 rows
{
	printf 'a\nb\nc\nd\n'
	head -c 70000 /dev/zero | tr '\0' 'z'
	printf '\ne\n'
} >"$TMP/huge"
expect_partial "oversized row" in "$TMP/huge" 5 2 4 --batch-rows 2 --linger-ms 600000

# a line longer than the whole read buffer (2 MB without a newline)
{
	printf 'a\nb\n'
	head -c 2000000 /dev/zero | tr '\0' 'z'
	printf '\n'
} >"$TMP/endless"
expect_partial "endless line" in "$TMP/endless" 3 1 2 --batch-rows 2 --linger-ms 600000

# a row storage refuses (over its --max-row 1000) at line 3: with one batch in flight, the
# batch of lines 1-2 is committed, that of lines 3-4 refused, nothing after it sent
{
	printf 'a\nb\n'
	head -c 2000 /dev/zero | tr '\0' 'y'
	printf '\nd\ne\nf\n'
} >"$TMP/refused"
expect_partial "row refused by storage" small "$TMP/refused" 3 1 2 --batch-rows 2 --inflight 1 \
	--linger-ms 600000

# ---- arguments ----
rc=0
sl ingest --batch-rows 10 in </dev/null >/dev/null 2>"$TMP/args.err" || rc=$?
((rc == 2)) || fail "--batch-rows without --stream: exit $rc, expected 2"
rc=0
sl ingest --stream --inflight 0 in </dev/null >/dev/null 2>"$TMP/args.err" || rc=$?
((rc == 2)) || fail "--inflight 0: exit $rc, expected 2"
# an empty input: nothing printed, exit 0
out=$(sl ingest --stream in </dev/null) || fail "empty --stream input exited with $?"
[[ -z $out ]] || fail "empty --stream input printed '$out'"

stop_sluiced
pass
