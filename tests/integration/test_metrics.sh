#!/usr/bin/env bash
# sluiced --metrics-listen: GET /metrics serves the Prometheus text format, port 0 works (the
# "metrics on" line names the port), and the numbers move: bytes out grow while a tail runs,
# the subscription count is 1 during it and 0 after, and the subscription's lag is reported.
source "$TESTLIB"
command -v curl >/dev/null || fail "curl is not installed (scripts/install-deps.sh)"
command -v promtool >/dev/null || fail "promtool is not installed (Debian's prometheus; scripts/install-deps.sh)"

start_sluiced --source "c=counter,rate=500" --metrics-listen 127.0.0.1:0
mport=$(sed -n 's/^sluiced: metrics on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SLUICED_LOG")
[[ -n $mport && $mport != 0 ]] || fail "no 'metrics on 127.0.0.1:PORT' line: $(cat "$SLUICED_LOG")"
URL="http://127.0.0.1:$mport/metrics"

scrape() { curl -sSf --max-time 10 "$URL" >"$TMP/m" || fail "GET /metrics failed"; }
# metric LINE-PREFIX: the value of the first sample whose line starts with LINE-PREFIX.
metric() { awk -v p="$1" 'index($0, p) == 1 { print $NF; exit }' "$TMP/m"; }

# The text parses as the Prometheus exposition format: every sample line is NAME{LABELS} VALUE
# of a family announced by a TYPE line before it, and histograms are cumulative.
check_format() {
	awk '
		/^# HELP / { next }
		/^# TYPE / { type[$3] = $4; next }
		/^#/ { print "stray comment: " $0; bad = 1; next }
		{
			if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? ([-+]?[0-9.]+([eE][-+]?[0-9]+)?|[-+]Inf|NaN)$/) {
				print "bad sample line: " $0; bad = 1; next
			}
			name = $0; sub(/[{ ].*/, "", name)
			fam = name; sub(/_(bucket|sum|count)$/, "", fam)
			if (!(name in type) && !(fam in type && type[fam] == "histogram")) {
				print "no TYPE for " name; bad = 1
			}
		}
		END { exit bad }' "$TMP/m" >&2 || fail "the metrics do not parse as Prometheus text (above)"
	awk '/^sluice_fsync_seconds_bucket/ { v = $NF + 0; if (v < last) bad = 1; last = v }
		END { exit bad }' "$TMP/m" || fail "fsync histogram buckets are not cumulative"
	[[ $(metric 'sluice_fsync_seconds_bucket{le="+Inf"}') == $(metric 'sluice_fsync_seconds_count ') ]] ||
		fail "the +Inf bucket differs from the count"
	# Prometheus' own linter: names, units, _total on counters, help texts.
	promtool check metrics <"$TMP/m" >"$TMP/promtool" 2>&1 || fail "promtool check metrics: $(cat "$TMP/promtool")"
	[[ ! -s $TMP/promtool ]] || fail "promtool check metrics warns: $(cat "$TMP/promtool")"
}

scrape
check_format
for m in sluice_connections sluice_connections_accepted_total sluice_subscriptions \
	sluice_bytes_in_total sluice_bytes_out_total sluice_frames_in_total sluice_frames_out_total \
	sluice_fsync_seconds_count; do
	[[ -n $(metric "$m ") ]] || fail "metric $m missing"
done
[[ $(metric 'sluice_subscriptions ') == 0 ]] || fail "subscriptions before any client: $(metric 'sluice_subscriptions ')"
[[ -n $(metric 'sluice_source_upper{source="c",worker="0"}') ]] || fail "no upper for source c"
[[ -n $(metric 'sluice_source_since{source="c",worker="0"}') ]] || fail "no since for source c"
[[ -n $(metric 'sluice_log_bytes{source="c",worker="0",collection="ok"}') ]] || fail "no log bytes for c"
[[ -n $(metric 'sluice_errors_total{kind="SL_ENOSOURCE"}') ]] || fail "no errors_total by kind"
# The build this process runs, as --version says it.
[[ $("$SLUICED" --version) =~ ^sluiced\ ([^ ]+)\ \(git\ ([^\)]+)\)$ ]] || fail "sluiced --version: $("$SLUICED" --version)"
[[ $(metric "sluice_build_info{version=\"${BASH_REMATCH[1]}\",revision=\"${BASH_REMATCH[2]}\"}") == 1 ]] ||
	fail "no sluice_build_info matching --version: $(grep build_info "$TMP/m")"
up0=$(metric 'sluice_source_upper{source="c",worker="0"}')

# A tail: one subscription, bytes out growing, a lag per subscription.
bg timeout -k 5 120 "$SLUICE" tail --server "$SERVER" c >"$TMP/tail.out"
TAIL_PID=$BG_PID
for ((i = 0; i < 200; i++)); do
	scrape
	[[ $(metric 'sluice_subscriptions ') == 1 ]] && break
	sleep 0.05
done
[[ $(metric 'sluice_subscriptions ') == 1 ]] || fail "subscriptions while one tail runs: $(metric 'sluice_subscriptions ')"
check_format
grep -Eq '^sluice_subscription_lag\{conn="[0-9]+",handle="[0-9]+",source="c",worker="0",dataflow="[0-9]+"\} [0-9]+$' "$TMP/m" ||
	fail "no lag for the subscription: $(grep lag "$TMP/m")"
grep -Eq '^sluice_connection_subscriptions\{conn="[0-9]+",peer="127\.0\.0\.1:[0-9]+"\} 1$' "$TMP/m" ||
	fail "no connection with one subscription: $(grep connection_subscriptions "$TMP/m")"
out1=$(metric 'sluice_bytes_out_total ')
for ((i = 0; i < 200; i++)); do
	scrape
	(( $(metric 'sluice_bytes_out_total ') > out1 )) && break
	sleep 0.05
done
(( $(metric 'sluice_bytes_out_total ') > out1 )) || fail "bytes out did not grow while the tail ran"
(( $(metric 'sluice_source_upper{source="c",worker="0"}') > up0 )) || fail "the upper of c did not move"
(( $(metric 'sluice_frames_out_total ') > 0 )) || fail "no frames out"
[[ -s $TMP/tail.out ]] || sleep 0.5
[[ -s $TMP/tail.out ]] || fail "the tail printed nothing"

# After the tail: no subscription, no connection; accepted connections counted.
kill_bounded "$TAIL_PID" || true
for ((i = 0; i < 200; i++)); do
	scrape
	[[ $(metric 'sluice_subscriptions ') == 0 && $(metric 'sluice_connections ') == 0 ]] && break
	sleep 0.05
done
[[ $(metric 'sluice_subscriptions ') == 0 ]] || fail "subscriptions after the tail: $(metric 'sluice_subscriptions ')"
[[ $(metric 'sluice_connections ') == 0 ]] || fail "connections after the tail: $(metric 'sluice_connections ')"
(( $(metric 'sluice_connections_accepted_total ') >= 1 )) || fail "accepted connections not counted"
! grep -q '^sluice_subscription_lag{' "$TMP/m" || fail "lag of a subscription that is gone"
(( $(metric 'sluice_bytes_out_total ') >= out1 )) || fail "bytes out went backwards after the close"

# Other paths are 404; a bad --metrics-listen is a usage error.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$mport/nope")
[[ $code == 404 ]] || fail "GET /nope answered $code"
rc=0
"$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/d2" --metrics-listen nonsense 2>"$TMP/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q 'bad --metrics-listen' "$TMP/err" || fail "bad --metrics-listen: status $rc, $(cat "$TMP/err")"
stop_sluiced
pass
