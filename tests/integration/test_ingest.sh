#!/usr/bin/env bash
# sluice ingest: one invocation is one atomic batch.  A bad line rejects the whole batch (exit 1,
# `line L: reason`, nothing appears); a good batch prints its time and tail reads it back; the
# escapes \t \n \\ round-trip.
source "$TESTLIB"

start_sluiced --source "in=ingest,workers=3" --source "cnt=counter,max=3"

# expect_reject NAME STDIN EXPECTED-STDERR-REGEX [ARGS...]
expect_reject() {
	local what=$1 input=$2 re=$3 rc=0
	shift 3
	printf '%b' "$input" | sl ingest "$@" in >"$TMP/rej.out" 2>"$TMP/rej.err" || rc=$?
	[[ $rc -eq 1 ]] || fail "$what: exit status $rc, expected 1 (stderr: $(cat "$TMP/rej.err"))"
	[[ ! -s $TMP/rej.out ]] || fail "$what: printed '$(cat "$TMP/rej.out")' on stdout"
	[[ $(wc -l <"$TMP/rej.err") -eq 1 ]] || fail "$what: stderr is not one line: $(cat "$TMP/rej.err")"
	grep -Eq "$re" "$TMP/rej.err" || fail "$what: stderr '$(cat "$TMP/rej.err")' does not match /$re/"
}

expect_reject "bad escape" 'good1\ngood2\nbad\\qrow\ngood3\n' '^line 3: '
expect_reject "lone backslash" 'a\nb\\\n' '^line 2: '
expect_reject "updates: no tab" '1\ta\nxyz\n' '^line 2: ' --updates
expect_reject "updates: zero diff" '0\ta\n' '^line 1: ' --updates
expect_reject "updates: bad diff" '1\ta\n+2\tb\n1x\tc\n' '^line 3: ' --updates
expect_reject "updates: diff overflow" '99999999999999999999\ta\n' '^line 1: ' --updates
[[ $(source_upper in) == 0 ]] || fail "a rejected batch advanced the source (upper $(source_upper in))"

# A good batch, with every escape, a raw tab, an empty row and a last line without newline.
printf '%s\n' 'plain' 'tab\there' 'newline\nhere' 'back\\slash' 'raw	tab' '' 'dup' >"$TMP/batch"
printf 'no-newline' >>"$TMP/batch"
t1=$(sl ingest in <"$TMP/batch") || fail "sluice ingest exited with $?"
[[ $t1 =~ ^[0-9]+$ ]] || fail "sluice ingest printed '$t1', not a time"

# --updates batch.
t2=$(printf '5\tfive\n-2\tdup\n+1\tplain\n-1\tgone\n' | sl ingest --updates in) || fail "ingest --updates exited with $?"
[[ $t2 =~ ^[0-9]+$ && $t2 -gt $t1 ]] || fail "second batch time '$t2' is not after '$t1'"

sl tail --until $((t2 + 1)) in >"$TMP/tail" || fail "tail exited with $?"
{
	for r in 'plain' 'tab\there' 'newline\nhere' 'back\\slash' 'raw\ttab' '' 'dup' 'no-newline'; do
		printf 'ok\t%s\t1\t%s\n' "$t1" "$r"
	done
	printf 'ok\t%s\t5\tfive\nok\t%s\t-2\tdup\nok\t%s\t1\tplain\nok\t%s\t-1\tgone\n' "$t2" "$t2" "$t2" "$t2"
} | sort >"$TMP/expected"
sort "$TMP/tail" >"$TMP/actual"
expect_diff "$TMP/expected" "$TMP/actual" "tail after ingest"

# The consolidated view.
sl tail --consolidate --until $((t2 + 1)) in >"$TMP/cons" || fail "tail --consolidate exited with $?"
printf 'ok\t\t1\nok\tback\\\\slash\t1\nok\tdup\t-1\nok\tfive\t5\nok\tgone\t-1\nok\tnewline\\nhere\t1\nok\tno-newline\t1\nok\tplain\t2\nok\traw\\ttab\t1\nok\ttab\\there\t1\n' >"$TMP/cons.expected"
expect_diff "$TMP/cons.expected" "$TMP/cons" "tail --consolidate after ingest"

# Round trip: what tail prints (ROW column) fed back to ingest gives the same rows.
cut -f4 "$TMP/tail" | head -n 4 >"$TMP/again"
t3=$(sl ingest in <"$TMP/again") || fail "re-ingest exited with $?"
sl tail --from "$t3" --until $((t3 + 1)) in | cut -f4 | sort >"$TMP/again.out"
sort "$TMP/again" >"$TMP/again.sorted"
expect_diff "$TMP/again.sorted" "$TMP/again.out" "escape round trip"

# Errors: unknown source, not an ingest source.
rc=0; echo x | sl ingest nosuch 2>"$TMP/err" || rc=$?
[[ $rc -eq 1 && $(cat "$TMP/err") == "sluice: unknown source nosuch" ]] || fail "ingest into unknown source: rc=$rc '$(cat "$TMP/err")'"
rc=0; echo x | sl ingest cnt 2>"$TMP/err" || rc=$?
[[ $rc -eq 1 && $(wc -l <"$TMP/err") -eq 1 ]] || fail "ingest into a counter: rc=$rc '$(cat "$TMP/err")'"

# Progress: on a terminal (script(1) gives the command a pty), rows and MiB sent on stderr;
# through a pipe, not a byte of it.
command -v script >/dev/null || fail "script(1) is missing (util-linux)"
seq 1 200000 | sed 's/^/p-/' >"$TMP/many"
SLUICE_BIN=$SLUICE SRV=$SERVER timeout -k 5 120 script -qec '"$SLUICE_BIN" ingest --server "$SRV" in <"'"$TMP/many"'"' /dev/null >"$TMP/tty.out" ||
	fail "ingest on a terminal failed: $(cat "$TMP/tty.out")"
grep -q 'sent 200000 rows, [0-9.]* MiB, in [0-9.]* s' "$TMP/tty.out" || fail "no progress on a terminal: $(cat -A "$TMP/tty.out" | head -5)"
sl ingest in <"$TMP/many" >"$TMP/pipe.out" 2>"$TMP/pipe.err" || fail "ingest through a pipe failed"
[[ ! -s $TMP/pipe.err ]] || fail "progress written to a stderr that is not a terminal: $(cat "$TMP/pipe.err")"
[[ $(wc -l <"$TMP/pipe.out") -eq 1 ]] || fail "ingest printed more than its time: $(cat "$TMP/pipe.out")"
stop_sluiced
pass
