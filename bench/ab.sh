#!/usr/bin/env bash
# ab.sh BEFORE AFTER ROUNDS [sluice_bench args...] - compares two sluice_bench binaries in one
# run, alternating them (BEFORE, AFTER, BEFORE, ...) ROUNDS times each, because on a shared VM
# single runs vary by ~20% and drift over minutes: alternating spreads the drift over both.
# Each run is `sluice_bench --runs 1 --write F ARGS`; the report's table gives, per row, the
# median over the rounds of each binary and AFTER/BEFORE.  Markdown on stdout.
set -euo pipefail
before=${1:?usage: ab.sh BEFORE AFTER ROUNDS [ARGS...]}
after=${2:?}
rounds=${3:?}
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for ((r = 1; r <= rounds; r++)); do
	for side in before after; do
		bin=$before
		[[ $side == after ]] && bin=$after
		echo "ab.sh: round $r/$rounds, $side" >&2
		# A run that fails (the VM starving a deadline) is retried, at most twice, and said.
		for try in 1 2 3; do
			"$bin" --runs 1 --write "$tmp/$side.$r.md" "$@" >"$tmp/out" 2>&1 && break
			echo "ab.sh: $side run $r failed (try $try): $(tail -n 1 "$tmp/out")" >&2
			((try < 3)) || exit 1
		done
	done
done

# Rows "| test | metric | value | ..." of every report -> "side<TAB>test | metric<TAB>value".
for f in "$tmp"/*.md; do
	side=$(basename "$f")
	side=${side%%.*}
	awk -F' *\\| *' -v s="$side" 'NF >= 5 && $2 != "test" && $2 !~ /^-+$/ { print s "\t" $2 " | " $3 "\t" $4 }' "$f"
done | python3 -c '
import sys, statistics, re
vals = {}
order = []
for line in sys.stdin:
    side, key, v = line.rstrip("\n").split("\t")
    m = re.match(r"^(-?[0-9.]+)", v)
    if not m:
        continue
    if key not in vals:
        vals[key] = {"before": [], "after": []}
        order.append(key)
    vals[key][side].append(float(m.group(1)))
print("| test | metric | before (median) | after (median) | after / before |")
print("| --- | --- | ---: | ---: | ---: |")
for k in order:
    b, a = vals[k]["before"], vals[k]["after"]
    if not b or not a:
        continue
    mb, ma = statistics.median(b), statistics.median(a)
    ratio = ma / mb if mb else float("nan")
    t, m = k.split(" | ", 1)
    print(f"| {t} | {m} | {mb:.6g} | {ma:.6g} | {ratio:.2f} |")
'
