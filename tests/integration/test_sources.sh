#!/usr/bin/env bash
# sluice sources: one line per source, NAME ID KIND WORKERS UPPER, tab-separated, no header;
# UPPER is the minimum over the workers or `closed`.
source "$TESTLIB"

start_sluiced --source "finished=counter,workers=2,max=10" \
	--source "in=ingest,workers=3" \
	--source "slow=counter,workers=4,rate=5" \
	--source "tailed=file,path=$TMP/nothing-yet.txt"

wait_upper finished 11
sl sources >"$TMP/out" || fail "sluice sources exited with $?"

[[ $(wc -l <"$TMP/out") -eq 4 ]] || fail "expected 4 lines, got: $(cat "$TMP/out")"
awk -F'\t' 'NF != 5 { print "not 5 fields: " $0; bad = 1 }
	$2 !~ /^[0-9]+$/ { print "bad id: " $0; bad = 1 }
	$4 !~ /^[0-9]+$/ { print "bad workers: " $0; bad = 1 }
	$5 !~ /^([0-9]+|closed)$/ { print "bad upper: " $0; bad = 1 }
	END { exit bad }' "$TMP/out" >&2 || fail "malformed sources output"
[[ $(cut -f2 "$TMP/out" | sort -u | wc -l) -eq 4 ]] || fail "source ids are not distinct: $(cut -f2 "$TMP/out" | tr '\n' ' ')"

line() { awk -F'\t' -v n="$1" '$1 == n { print $1 "\t" $3 "\t" $4 "\t" $5 }' "$TMP/out"; }
[[ $(line finished) == "$(printf 'finished\tcounter\t2\tclosed')" ]] || fail "finished: '$(line finished)'"
[[ $(line in) == "$(printf 'in\tingest\t3\t0')" ]] || fail "in: '$(line in)'"
[[ $(line tailed) == "$(printf 'tailed\tfile\t1\t0')" ]] || fail "tailed: '$(line tailed)'"
slow=$(line slow)
[[ $slow == "$(printf 'slow\tcounter\t4\t')"* ]] || fail "slow: '$slow'"

# The paced counter advances.
u1=$(source_upper slow)
sleep 1.2
u2=$(source_upper slow)
[[ $u2 -gt $u1 ]] || fail "rate=5 counter did not advance in 1.2 s ($u1 -> $u2)"

# --json: the same facts as one document.
sl sources --json >"$TMP/json" || fail "sluice sources --json exited with $?"
sl sources >"$TMP/out"
jq -r '.sources[] | [.name, .id, .kind, .workers, (if .closed then "closed" else .upper end)] | @tsv' "$TMP/json" |
	cut -f1-4 >"$TMP/from_json" || fail "sluice sources --json is not the documented document: $(cat "$TMP/json")"
cut -f1-4 "$TMP/out" | expect_diff /dev/stdin "$TMP/from_json" "sources --json against the table"
jq -e '.sources[] | select(.name == "finished") | .closed == true and .upper == null' "$TMP/json" >/dev/null ||
	fail "a closed source in --json: $(jq -c '.sources[] | select(.name == "finished")' "$TMP/json")"
jq -e '.sources[] | select(.name == "in") | .closed == false and .upper == 0 and .workers == 3' "$TMP/json" >/dev/null ||
	fail "an open source in --json: $(jq -c '.sources[] | select(.name == "in")' "$TMP/json")"

sl sources --help >"$TMP/help" || fail "sluice sources --help exited with $?"
grep -q 'NAME' "$TMP/help" || fail "sluice sources --help"
stop_sluiced
pass
