#!/usr/bin/env bash
# The file source: waits for a missing file, turns each new line into a row (text), checks csv
# lines (column count, quotes) and sends bad ones to err as `line L: reason`.
source "$TESTLIB"

TXT=$TMP/in.txt CSV=$TMP/in.csv
printf 'a,b,c\n' >"$CSV"
start_sluiced --source "t=file,path=$TXT" --source "c=file,path=$CSV,format=csv,columns=3"

# consolidated NAME: the consolidated collections of NAME up to its current upper.
consolidated() {
	local u
	u=$(source_upper "$1") || fail "sluice sources failed"
	[[ -n $u ]] || fail "no source $1"
	sl tail --consolidate --until "$u" "$1"
}

# wait_for NAME EXPECTED-FILE: waits (at most 30 s) until NAME's consolidated view equals the file.
wait_for() {
	local i
	for ((i = 0; i < 150; i++)); do
		consolidated "$1" >"$TMP/got.$1" || fail "tail of $1 failed"
		cmp -s "$2" "$TMP/got.$1" && return 0
		sleep 0.2
	done
	expect_diff "$2" "$TMP/got.$1" "file source $1"
}

# text: the file does not exist yet.
sleep 0.3
[[ $(source_upper t) == 0 ]] || fail "missing file produced something"
printf 'one\ntwo\n' >"$TMP/tmp.txt"
mv "$TMP/tmp.txt" "$TXT"
printf 'ok\tone\t1\nok\ttwo\t1\n' >"$TMP/exp.t"
wait_for t "$TMP/exp.t"

# Appended lines, one with a tab, one empty, one with a NUL byte (an error), and a partial line
# that only counts once its newline arrives.
printf 'three\twith tab\n\nnul\0byte\npart' >>"$TXT"
printf 'ok\t\t1\nok\tone\t1\nok\tthree\\twith tab\t1\nok\ttwo\t1\nerr\tline 5: contains a NUL byte\t1\n' >"$TMP/exp.t"
wait_for t "$TMP/exp.t"
printf 'ial\n' >>"$TXT"
printf 'ok\t\t1\nok\tone\t1\nok\tpartial\t1\nok\tthree\\twith tab\t1\nok\ttwo\t1\nerr\tline 5: contains a NUL byte\t1\n' >"$TMP/exp.t"
wait_for t "$TMP/exp.t"

# A line longer than SL_ROW_MAX goes to err, and the next line is read normally.
head -c 70000 /dev/zero | tr '\0' 'x' >>"$TXT"
printf '\nafter\n' >>"$TXT"
printf 'ok\t\t1\nok\tafter\t1\nok\tone\t1\nok\tpartial\t1\nok\tthree\\twith tab\t1\nok\ttwo\t1\nerr\tline 5: contains a NUL byte\t1\nerr\tline 7: longer than 65472 bytes\t1\n' >"$TMP/exp.t"
wait_for t "$TMP/exp.t"

# csv
cat >>"$CSV" <<'CSVEOF'
"x,y",z,w
1,2
"unbalanced,1,2
"q""uote",2,3
a,"b"c,d
,,
1,2,3,4
CSVEOF
{
	printf 'ok\t"q""uote",2,3\t1\nok\t"x,y",z,w\t1\nok\t,,\t1\nok\ta,b,c\t1\n'
	printf 'err\tline 3: expected 3 columns, got 2\t1\n'
	printf 'err\tline 4: unbalanced quotes in column 1\t1\n'
	printf 'err\tline 6: unexpected character after closing quote in column 2\t1\n'
	printf 'err\tline 8: expected 3 columns, got 4\t1\n'
} >"$TMP/exp.c"
wait_for c "$TMP/exp.c"

# Every batch read in one poll has one time, and the upper then moves past it.
u=$(source_upper c)
[[ $u -ge 1 ]] || fail "csv source upper is $u"

# Bad specs are refused at start.
rc=0
timeout 10 "$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/d2" --source "x=file" 2>"$TMP/e" || rc=$?
[[ $rc -eq 2 && $(wc -l <"$TMP/e") -eq 1 ]] || fail "file without path: rc=$rc '$(cat "$TMP/e")'"
rc=0
timeout 10 "$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/d2" --source "x=file,path=/x,format=json" 2>"$TMP/e" || rc=$?
[[ $rc -eq 2 && $(wc -l <"$TMP/e") -eq 1 ]] || fail "file format=json: rc=$rc '$(cat "$TMP/e")'"

stop_sluiced
pass
