#!/usr/bin/env bash
# sluiced --config FILE: one "key = value" per flag; flags on the command line replace the
# file's (a repeatable one, --source, as a whole); a bad file is refused with its line number.
source "$TESTLIB"

cat >"$TMP/sluiced.conf" <<'CONF'
# two counters and an ingest source
source = a=counter,max=5
  source	=  "b=counter,workers=2,max=3"

segment-size = 262144
listen = 127.0.0.1:1
CONF

# The file's sources are hosted; --listen on the command line (start_sluiced's) wins over the
# file's port 1, which could not be bound.
start_sluiced --config "$TMP/sluiced.conf"
wait_upper a 6
wait_upper b 4
sl sources | cut -f1,3,4 >"$TMP/sources"
printf 'a\tcounter\t1\nb\tcounter\t2\n' >"$TMP/want"
expect_diff "$TMP/want" "$TMP/sources" "sources from the config file"
sl tail --until 4 b | sort >"$TMP/b" || fail "tail of b exited with $?"
[[ $(wc -l <"$TMP/b") -eq 3 ]] || fail "b did not count to 3: $(cat "$TMP/b")"
stop_sluiced

# A --source on the command line replaces the file's list.
start_sluiced --config "$TMP/sluiced.conf" --source "c=ingest"
sl sources | cut -f1 >"$TMP/sources"
[[ $(cat "$TMP/sources") == c ]] || fail "command-line --source did not replace the file's: $(cat "$TMP/sources")"
stop_sluiced

# Bad files: exit status 2, the file and line named, nothing started.
printf 'listen = 127.0.0.1:0\nfsnyc = always\n' >"$TMP/typo.conf"
rc=0
"$SLUICED" --config "$TMP/typo.conf" --data-dir "$TMP/d1" 2>"$TMP/err" || rc=$?
[[ $rc -eq 2 ]] || fail "an unknown key: exit $rc, expected 2"
grep -q "typo.conf line 2: unknown key 'fsnyc'" "$TMP/err" || fail "unclear error: $(cat "$TMP/err")"
printf 'no equals sign here\n' >"$TMP/noeq.conf"
rc=0
"$SLUICED" --config "$TMP/noeq.conf" 2>"$TMP/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "noeq.conf line 1: expected 'key = value'" "$TMP/err" ||
	fail "a line without '=': exit $rc, $(cat "$TMP/err")"
printf 'fsync = sometimes\n' >"$TMP/bad.conf"
rc=0
"$SLUICED" --config "$TMP/bad.conf" 2>"$TMP/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "bad --fsync 'sometimes'" "$TMP/err" || fail "a bad value: exit $rc, $(cat "$TMP/err")"
rc=0
"$SLUICED" --config "$TMP/missing.conf" 2>"$TMP/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "cannot read --config .*missing.conf: No such file" "$TMP/err" ||
	fail "a missing file: exit $rc, $(cat "$TMP/err")"
[[ ! -e $TMP/d1 ]] || fail "sluiced created its data directory although its config was refused"
pass
