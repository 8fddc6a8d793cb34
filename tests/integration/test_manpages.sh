#!/usr/bin/env bash
# The man pages (man/sluiced.1, man/sluice.1) render without a single roff warning, and they
# document exactly the flags the programs' --help lists: a flag in one and not the other fails,
# per command for sluice (a flag documented under the wrong command is caught too), and so does a
# command of `sluice --help` without a section of its own in sluice.1.
#
# What counts as a flag of --help: every -X / --name in its "usage:" lines (up to the first
# empty line), and the leading flags of every option line (a line indented 1 to 8 spaces that
# starts with '-': "  --name ARG   text", "  -V, --version   text", "      --long-only"; the
# flags before the first word with a lower-case letter, so flags named in the description do
# not count; description lines continued further right are not option lines).
#
# What counts as documented in a page (the convention at the top of both pages): an entry
#   .TP
#   .BI \-\-name " ARG"
# whose tag line (the line after .TP, or after a .TQ of the same entry) starts with a flag;
# every \-\-name and \-X on that tag line counts.  sluiced.1: the entries in its OPTIONS section (with its .SS parts), against
# `sluiced --help`.  sluice.1: the entries in OPTIONS against `sluice --help`, and the entries of
# each COMMANDS subsection `.SS "sluice CMD"` against `sluice CMD --help`.
#
# MAN_DIR (default: the source tree's man/) lets the check run on other copies of the pages.
source "$TESTLIB"
: "${SOURCE_DIR:?}"
MAN_DIR=${MAN_DIR:-$SOURCE_DIR/man}

for tool in groff:groff-base man:man-db; do
	command -v "${tool%%:*}" >/dev/null ||
		fail "${tool%%:*} is missing: install Debian's ${tool#*:} (scripts/install-deps.sh lists it)"
done

# ---- (a) both pages render, without warnings ----
for page in "$MAN_DIR/sluiced.1" "$MAN_DIR/sluice.1"; do
	[[ -f $page ]] || fail "no man page $page"
	rc=0
	groff -man -Tutf8 -ww -z "$page" 2>"$TMP/groff.err" || rc=$?
	[[ $rc -eq 0 && ! -s $TMP/groff.err ]] ||
		fail "groff -man -ww warns about $page (exit status $rc):"$'\n'"$(cat "$TMP/groff.err")"
	rc=0
	MANWIDTH=80 man --warnings=w -l "$page" >"$TMP/man.out" 2>"$TMP/man.err" || rc=$?
	[[ $rc -eq 0 && ! -s $TMP/man.err ]] ||
		fail "man -l $page failed (exit status $rc):"$'\n'"$(cat "$TMP/man.err")"
	grep -q '^NAME' "$TMP/man.out" || fail "man -l $page renders no NAME section"
done

# ---- extraction ----

# help_flags < HELP: the flags a --help output lists, one per line, sorted.
help_flags() {
	awk '
		/^usage:/ { usage = 1 }
		usage && /^[ \t]*$/ { usage = 0 }
		usage {
			line = $0
			while (match(line, /(^|[[ |,(])--?[A-Za-z][A-Za-z0-9-]*/)) {
				tok = substr(line, RSTART, RLENGTH)
				sub(/^[^-]*/, "", tok)
				print tok
				line = substr(line, RSTART + RLENGTH)
			}
			next
		}
		match($0, /^ +-/) && RLENGTH <= 9 {
			n = split($0, w, /[ \t]+/)
			for (i = 1; i <= n; i++) {
				t = w[i]
				if (t == "")
					continue
				sub(/,$/, "", t)
				if (t ~ /^--?[A-Za-z][A-Za-z0-9-]*(=.*)?$/) {
					sub(/=.*/, "", t)
					print t
				} else if (t ~ /[a-z]/) {
					break # the description
				} # else an argument name: HOST:PORT, N[/s], FILE...
			}
		}' | sort -u
}

# page_flags PAGE: "SECTION<TAB>FLAG" for every documented flag, SECTION being "main" for
# OPTIONS and CMD for a COMMANDS subsection "sluice CMD"; plus "SECTION<TAB>" for every
# section, so that a section without flags still shows up.
page_flags() {
	awk '
		function unquote(s) { gsub(/"/, "", s); return s }
		/^\.\\"/ { next } # a comment
		/^\.SH/ {
			sh = unquote(substr($0, 5)); sect = ""
			if (sh == "OPTIONS") { sect = "main"; print sect "\t" }
			next
		}
		/^\.SS/ {
			if (sh == "COMMANDS") {
				n = split(unquote(substr($0, 5)), w, /[ \t]+/)
				sect = (w[1] == "sluice" && n == 2) ? w[2] : "?" unquote(substr($0, 5))
				print sect "\t"
			}
			next
		}
		/^\.T[PQ]([ \t]|$)/ { tag = 1; next } # .TQ: another tag of the same entry
		tag {
			tag = 0
			if (sect == "")
				next
			line = $0
			sub(/^\.[A-Za-z]+[ \t]*/, "", line)              # the font macro
			gsub(/\\f(\[[^]]*\]|\(..|.)/, "", line)          # font escapes
			gsub(/\\[c&]/, "", line)
			gsub(/\\-/, "-", line)
			gsub(/"/, " ", line)
			sub(/^[ \t]+/, "", line)
			if (line !~ /^-/)
				next                                          # not a flag entry
			s = line
			while (match(s, /--[A-Za-z0-9][A-Za-z0-9-]*/)) {
				print sect "\t" substr(s, RSTART, RLENGTH)
				s = substr(s, RSTART + RLENGTH)
			}
			s = " " line " "
			while (match(s, /[ ,(]-[A-Za-z][^A-Za-z0-9-]/)) {
				print sect "\t" substr(s, RSTART + 1, 2)
				s = substr(s, RSTART + 2)
			}
		}' "$1" | sort -u
}

# compare WHAT HELP_FILE PAGE_FLAGS_FILE PAGE SECTION: fails naming every difference.
problems=()
compare() {
	local what=$1 help=$2 doc=$3 page=$4 sect=$5 f
	while read -r f; do
		problems+=("$page, $sect: '$f' is in \`$what --help\` but not documented there (.TP, then a tag line starting with the flag)")
	done < <(comm -23 "$help" "$doc")
	while read -r f; do
		problems+=("$page, $sect: documents '$f', which \`$what --help\` does not list")
	done < <(comm -13 "$help" "$doc")
}

# section_flags FLAGS_FILE SECTION: the flags of one section, sorted.
section_flags() {
	awk -F '\t' -v s="$2" '$1 == s && $2 != "" { print $2 }' "$1" | sort -u
}

# ---- (b) sluiced ----
"$SLUICED" --help >"$TMP/help.sluiced" || fail "sluiced --help exited with $?"
help_flags <"$TMP/help.sluiced" >"$TMP/hf.sluiced"
[[ -s $TMP/hf.sluiced ]] || fail "found no flags in sluiced --help: the extraction is broken"
page_flags "$MAN_DIR/sluiced.1" >"$TMP/pf.sluiced"
grep -q $'^main\t' "$TMP/pf.sluiced" || fail "sluiced.1 has no OPTIONS section"
section_flags "$TMP/pf.sluiced" main >"$TMP/df.sluiced"
compare sluiced "$TMP/hf.sluiced" "$TMP/df.sluiced" sluiced.1 OPTIONS

# ---- (b) and (c) sluice and each of its commands ----
"$SLUICE" --help >"$TMP/help.main" || fail "sluice --help exited with $?"
awk '/^Commands:/ { on = 1; next } on && /^[ \t]*$/ { on = 0 } on && /^  [a-z]/ { print $1 }' \
	"$TMP/help.main" >"$TMP/commands"
[[ -s $TMP/commands ]] || fail "found no commands in sluice --help: the extraction is broken"
page_flags "$MAN_DIR/sluice.1" >"$TMP/pf.sluice"
grep -q $'^main\t' "$TMP/pf.sluice" || fail "sluice.1 has no OPTIONS section"
help_flags <"$TMP/help.main" >"$TMP/hf.main"
section_flags "$TMP/pf.sluice" main >"$TMP/df.main"
compare sluice "$TMP/hf.main" "$TMP/df.main" sluice.1 OPTIONS

while read -r cmd; do
	if ! grep -q "^$cmd"$'\t' "$TMP/pf.sluice"; then
		problems+=("sluice.1: command '$cmd' (in \`sluice --help\`) has no section .SS \"sluice $cmd\" under COMMANDS")
		continue
	fi
	timeout 30 "$SLUICE" "$cmd" --help >"$TMP/help.$cmd" || fail "sluice $cmd --help exited with $?"
	help_flags <"$TMP/help.$cmd" >"$TMP/hf.$cmd"
	[[ -s $TMP/hf.$cmd ]] || fail "found no flags in sluice $cmd --help: the extraction is broken"
	section_flags "$TMP/pf.sluice" "$cmd" >"$TMP/df.$cmd"
	compare "sluice $cmd" "$TMP/hf.$cmd" "$TMP/df.$cmd" sluice.1 "\"sluice $cmd\""
done <"$TMP/commands"
# A section for a command sluice does not have (removed, renamed, or a malformed title).
while read -r sect; do
	grep -qx -- "$sect" "$TMP/commands" ||
		problems+=("sluice.1: COMMANDS has a section for '$sect', which \`sluice --help\` does not list (titles are .SS \"sluice CMD\")")
done < <(cut -f1 "$TMP/pf.sluice" | sort -u | grep -vx main)

if [[ ${#problems[@]} -gt 0 ]]; then
	printf '%s\n' "${problems[@]}" >&2
	fail "${#problems[@]} difference(s) between the man pages and --help (above)"
fi
pass "$(wc -l <"$TMP/hf.sluiced") sluiced flags, $(wc -l <"$TMP/commands") sluice commands"
