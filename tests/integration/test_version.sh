#!/usr/bin/env bash
# --version and -V print one line "PROGRAM X.Y.Z (git REV)" naming the commit the binaries were
# built from; -h is --help everywhere.
source "$TESTLIB"
: "${SOURCE_DIR:?}"

release=$(sed -n 's/^project(sluice VERSION \([0-9.]*\) .*/\1/p' "$SOURCE_DIR/CMakeLists.txt")
[[ -n $release ]] || fail "cannot read the project version from CMakeLists.txt"
rev=unknown
if head=$(git -C "$SOURCE_DIR" rev-parse --short=12 HEAD 2>/dev/null); then
	rev=$head
fi

for prog in sluiced sluice; do
	bin=$SLUICED
	[[ $prog == sluice ]] && bin=$SLUICE
	for flag in --version -V; do
		out=$("$bin" "$flag") || fail "$prog $flag exited with $?"
		[[ $(wc -l <<<"$out") -eq 1 ]] || fail "$prog $flag printed more than one line: $out"
		[[ $out =~ ^$prog\ ([0-9]+\.[0-9]+\.[0-9]+)\ \(git\ ([0-9a-f]{12}(-dirty)?|unknown)\)$ ]] ||
			fail "$prog $flag printed '$out', not '$prog X.Y.Z (git REV)'"
		[[ ${BASH_REMATCH[1]} == "$release" ]] || fail "$prog says release ${BASH_REMATCH[1]}, CMakeLists.txt $release"
		got=${BASH_REMATCH[2]%-dirty}
		[[ $got == "$rev" ]] || fail "$prog says it was built from $got, the tree is at $rev (rebuild?)"
	done
done

"$SLUICED" -h >"$TMP/h" || fail "sluiced -h exited with $?"
"$SLUICED" --help >"$TMP/help"
cmp -s "$TMP/h" "$TMP/help" || fail "sluiced -h and --help differ"
grep -q -- '--version' "$TMP/help" || fail "sluiced --help does not mention --version"
"$SLUICE" -h >"$TMP/h" || fail "sluice -h exited with $?"
grep -q -- '--version' "$TMP/h" || fail "sluice --help does not mention --version"
for cmd in tail sources ingest promote stat; do
	"$SLUICE" "$cmd" -h >"$TMP/h" || fail "sluice $cmd -h exited with $?"
	"$SLUICE" "$cmd" --help >"$TMP/help"
	cmp -s "$TMP/h" "$TMP/help" || fail "sluice $cmd -h and --help differ"
	grep -q "usage: sluice $cmd" "$TMP/h" || fail "sluice $cmd -h does not print its usage"
done
pass
