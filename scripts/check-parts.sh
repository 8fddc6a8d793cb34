#!/usr/bin/env bash
# check-parts.sh SRC_DIR [OBJ_DIR] - keeps the architecture's arrows true (docs/ARCHITECTURE.md,
# "Parts"):
#   1. every #include "..." under src/ goes to a part its part may use (the table below);
#   2. no .c file of the library calls into another one that calls back into it, directly or
#      around a circle (read off the object files' symbols with nm; needs OBJ_DIR, the
#      sluice_obj target's object directory; skipped without it);
#   3. no file under src/, bench/ or fuzz/ is longer than MAX_LINES (800).
# Prints every violation and exits 1 if there is any.
set -euo pipefail
src=${1:?usage: check-parts.sh SRC_DIR [OBJ_DIR]}
obj=${2:-}
MAX_LINES=${MAX_LINES:-800}
bad=0

# The parts each part may include, besides itself.  "sluice" is include/sluice/sluice.h (the
# types and errors both sides agree on); "storage.h" and "compute.h" are the public APIs of the
# storage and compute runtimes.
declare -A ALLOWED=(
	[common]="sluice"
	[proto]="sluice"
	[net]="sluice"
	[log]="sluice proto common"
	[coord]="sluice common net"
	[storage]="sluice storage.h proto net log common"
	[compute]="sluice compute.h proto net common"
	[replica]="sluice storage.h compute.h storage compute proto net log common"
	[sources]="sluice storage.h proto common"
	[failover]="sluice storage.h common coord"
	[cli]="sluice storage.h compute.h proto net common sources coord replica failover"
)

# part_of INCLUDE: the part an include path names ("storage/x.h" -> storage, "sluice/storage.h"
# -> storage.h).
part_of() {
	case $1 in
	sluice/sluice.h) echo sluice ;;
	sluice/*) echo "${1#sluice/}" ;;
	*/*) echo "${1%%/*}" ;;
	*) echo "?" ;;
	esac
}

while IFS= read -r -d '' f; do
	rel=${f#"$src"/src/}
	part=${rel%%/*}
	if [[ -z ${ALLOWED[$part]+x} ]]; then
		echo "check-parts: $rel: part '$part' is not in the table of parts (add it, with its arrows)"
		bad=1
		continue
	fi
	while IFS= read -r line; do
		inc=${line#*\"}
		inc=${inc%%\"*}
		to=$(part_of "$inc")
		[[ $to == "$part" ]] && continue
		# The standby reaches storage only through the hooks storage made for it.
		if [[ $part == replica && $to == storage && $inc != storage/replica_hooks.h ]]; then
			echo "check-parts: src/$rel includes \"$inc\": replica may use only storage/replica_hooks.h of storage"
			bad=1
			continue
		fi
		if [[ " ${ALLOWED[$part]} " != *" $to "* ]]; then
			echo "check-parts: src/$rel includes \"$inc\": $part may not use $to"
			bad=1
		fi
	done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$f" || true)
done < <(find "$src/src" -name '*.[ch]' -print0)

if [[ -n $obj ]]; then
	# Edges "caller callee" between object files, from who defines and who uses each symbol.
	edges=$(find "$obj" -name '*.o' | sort | while read -r o; do
		name=${o#"$obj"/}
		# An object whose source is gone (a file moved since the build dir was made) is stale.
		[[ -f $src/${name%.o} ]] || continue
		nm "$o" | awk -v n="${name%.o}" '$1 == "U" { print "U", n, $2 } NF == 3 && $2 ~ /[TDBR]/ { print "D", n, $3 }'
	done | awk '$1 == "D" { def[$3] = $2 } $1 == "U" { use[NR] = $2 " " $3 }
		END { for (i in use) { split(use[i], p, " "); if ((p[2] in def) && def[p[2]] != p[1]) print p[1], def[p[2]] } }' | sort -u)
	if [[ -z $edges ]]; then
		echo "check-parts: no object files with symbols under $obj"
		bad=1
	elif ! out=$(tsort <<<"$edges" 2>&1 >/dev/null) || [[ -n $out ]]; then
		echo "check-parts: .c files that call each other in a circle (tsort names each loop):"
		echo "$out" | sed 's/^/  /'
		bad=1
	fi
fi

while IFS= read -r -d '' f; do
	n=$(wc -l <"$f")
	if ((n > MAX_LINES)); then
		echo "check-parts: ${f#"$src"/} has $n lines (more than $MAX_LINES: split it along its jobs)"
		bad=1
	fi
done < <(find "$src/src" "$src/bench" "$src/fuzz" -name '*.[ch]' -print0)

if ((bad)); then
	exit 1
fi
echo "check-parts: includes follow the parts' arrows, no call circles, no file over $MAX_LINES lines"
