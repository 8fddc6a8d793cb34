#!/usr/bin/env bash
# demo.sh - installs the dependencies, builds sluice, runs sluiced with a counter source and
# follows it with `sluice tail` for about 10 seconds, then stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
B=${BUILD_DIR:-build}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" -j "$(nproc)" --target sluiced sluice_cli

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-demo.XXXXXX")
sluiced_pid=
cleanup() {
	if [[ -n $sluiced_pid ]] && kill -0 "$sluiced_pid" 2>/dev/null; then
		kill -TERM "$sluiced_pid" 2>/dev/null || true
		wait "$sluiced_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

SPEC=demo=counter,workers=4,rate=5,keep=10,errors=7
echo "+ sluiced --listen 127.0.0.1:0 --data-dir $work/data --source $SPEC"
"$B"/sluiced --listen 127.0.0.1:0 --data-dir "$work/data" --source "$SPEC" 2>"$work/sluiced.log" &
sluiced_pid=$!

port=
for ((i = 0; i < 200; i++)); do
	port=$(sed -n 's/^sluiced: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/sluiced.log")
	[[ -n $port ]] && break
	kill -0 "$sluiced_pid" 2>/dev/null || { cat "$work/sluiced.log" >&2; exit 1; }
	sleep 0.05
done
[[ -n $port ]] || { echo "demo: sluiced did not start" >&2; exit 1; }
cat "$work/sluiced.log"

echo "+ sluice sources --server 127.0.0.1:$port"
"$B"/sluice sources --server "127.0.0.1:$port"
echo "+ sluice tail --server 127.0.0.1:$port --progress demo   (10 seconds)"
timeout --preserve-status -s TERM 10 "$B"/sluice tail --server "127.0.0.1:$port" --progress demo
echo "+ sluice tail --server 127.0.0.1:$port --consolidate --until 40 demo"
"$B"/sluice tail --server "127.0.0.1:$port" --consolidate --until 40 demo
echo "+ sluice sources --server 127.0.0.1:$port"
"$B"/sluice sources --server "127.0.0.1:$port"

kill -TERM "$sluiced_pid"
wait "$sluiced_pid"
sluiced_pid=
echo "demo: done"
