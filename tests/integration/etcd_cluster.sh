#!/usr/bin/env bash
# etcd_cluster.sh - a 3-member etcd cluster on 127.0.0.1 for the tests: start, kill or restart a
# member, stop.  Used by itest_coord (through fork/exec) and meant for shell tests too.
#
#   etcd_cluster.sh start DIR [OWNER_PID]  starts members 1..3 with data under DIR and waits (at
#                        most 30 s) until every member reports healthy; writes DIR/endpoints
#                        ("http://127.0.0.1:P1,http://127.0.0.1:P2,http://127.0.0.1:P3").  With
#                        OWNER_PID, a watchdog SIGKILLs the members once that process is gone, so
#                        a crashed test leaves no etcd behind.
#   etcd_cluster.sh kill DIR N       SIGKILLs member N and waits (at most 10 s) until it is gone.
#   etcd_cluster.sh restart DIR N    starts member N again on its data and waits until healthy.
#   etcd_cluster.sh wait DIR         waits (at most 30 s) until every running member is healthy.
#   etcd_cluster.sh stop DIR         SIGKILLs every member and the watchdog (DIR is the caller's).
#   etcd_cluster.sh ports DIR N      prints N free ports picked the same way (DIR unused).
# ETCD_CLIENT_HOST (default 127.0.0.1): the local address the members serve clients on (a
# test with network namespaces gives its host-side veth address); peers always use 127.0.0.1.
#
# Ports: etcd cannot report a port it chose itself, and its peers must know each other's ports
# in advance, so 6 ports are picked at random below the kernel's ephemeral range (outgoing
# connections never take them) among those nobody listens on; if a member still fails to bind
# (another test took the port meanwhile), the whole start is retried with new ports, 5 times at
# most.  Fast raft timings (heartbeat 50 ms, election 500 ms) keep leader changes and the
# minimum lease TTL (about 1 s) short.  Exits non-zero with the members' log tails on failure;
# etcd not installed is a failure, not a skip: it is a listed dependency.
set -euo pipefail

ETCD=${ETCD:-etcd}
CHOST=${ETCD_CLIENT_HOST:-127.0.0.1} # where clients reach the members (start only; kept after)
die() {
	echo "etcd_cluster.sh: $*" >&2
	exit 1
}

[[ $# -ge 2 ]] || die "usage: etcd_cluster.sh start|kill|restart|wait|stop DIR [ARG]"
VERB=$1
DIR=$2
command -v "$ETCD" >/dev/null || die "etcd not found (install Debian's etcd-server: scripts/install-deps.sh)"
command -v curl >/dev/null || die "curl not found (scripts/install-deps.sh installs it)"

listening_ports() {
	local f
	for f in /proc/net/tcp /proc/net/tcp6; do
		[[ -r $f ]] || continue
		while read -r _ local _ st _; do
			[[ $st == 0A ]] && echo $((16#${local##*:}))
		done < <(tail -n +2 "$f")
	done
}

pick_ports() { # [COUNT]: PORTS=(COUNT free ports, default 6)
	local want=${1:-6} low high used p n=0 tries=0
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	high=$((low - 1))
	low=$((high > 12000 ? high - 10000 : 2000))
	used=" $(listening_ports | tr '\n' ' ') "
	PORTS=()
	while ((n < want && tries < 1000)); do
		tries=$((tries + 1))
		p=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
		[[ $used == *" $p "* || " ${PORTS[*]-} " == *" $p "* ]] && continue
		PORTS+=("$p")
		n=$((n + 1))
	done
	((n == want)) || die "no $want free ports found in $low..$high"
}

member_alive() { # N: whether member N's recorded pid is an etcd of this DIR
	local pid
	[[ -s $DIR/m$1.pid ]] || return 1
	pid=$(cat "$DIR/m$1.pid")
	[[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--data-dir $DIR/m$1.data"
}

launch() { # N STATE: starts member N in the background
	local n=$1 state=$2
	# shellcheck source=/dev/null
	source "$DIR/cluster.env"
	local cport_var="CPORT$n" pport_var="PPORT$n"
	"$ETCD" --name "m$n" --data-dir "$DIR/m$n.data" \
		--listen-client-urls "http://$CHOST:${!cport_var}" \
		--advertise-client-urls "http://$CHOST:${!cport_var}" \
		--listen-peer-urls "http://127.0.0.1:${!pport_var}" \
		--initial-advertise-peer-urls "http://127.0.0.1:${!pport_var}" \
		--initial-cluster "$INITIAL_CLUSTER" --initial-cluster-state "$state" \
		--initial-cluster-token "$TOKEN" \
		--heartbeat-interval 50 --election-timeout 500 \
		</dev/null >>"$DIR/m$n.log" 2>&1 &
	echo $! >"$DIR/m$n.pid"
}

healthy() { # N: whether member N answers /health with true
	# shellcheck source=/dev/null
	source "$DIR/cluster.env"
	local cport_var="CPORT$1"
	curl -fsS -m 1 "http://$CHOST:${!cport_var}/health" 2>/dev/null | grep -q '"health":"true"'
}

# wait_healthy SECONDS N...: 0 once every member N is healthy, 2 if one died, 1 on timeout.
wait_healthy() {
	local secs=$1 i n ok
	shift
	for ((i = 0; i < secs * 10; i++)); do
		ok=1
		for n in "$@"; do
			# Right after launch the pid may still be the shell that is about to exec etcd
			# (its cmdline is not etcd's yet): dead only if it still is not 0.3 s later.
			if ! member_alive "$n"; then
				sleep 0.3
				member_alive "$n" || return 2
			fi
			healthy "$n" || ok=0
		done
		((ok)) && return 0
		sleep 0.1
	done
	return 1
}

kill_member() {
	local n=$1 pid i
	member_alive "$n" || return 0
	pid=$(cat "$DIR/m$n.pid")
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		member_alive "$n" || return 0
		sleep 0.1
	done
	die "member $n (pid $pid) still alive 10 s after SIGKILL"
}

show_logs() {
	local n
	for n in 1 2 3; do
		[[ -f $DIR/m$n.log ]] && { echo "---- member $n" >&2; tail -n 15 "$DIR/m$n.log" >&2; }
	done
	return 0
}

start_cluster() {
	local owner=${1:-} attempt rc
	mkdir -p "$DIR"
	for ((attempt = 1; attempt <= 5; attempt++)); do
		pick_ports
		{
			echo "CPORT1=${PORTS[0]} CPORT2=${PORTS[1]} CPORT3=${PORTS[2]}"
			echo "PPORT1=${PORTS[3]} PPORT2=${PORTS[4]} PPORT3=${PORTS[5]}"
			echo "INITIAL_CLUSTER=m1=http://127.0.0.1:${PORTS[3]},m2=http://127.0.0.1:${PORTS[4]},m3=http://127.0.0.1:${PORTS[5]}"
			echo "TOKEN=sluice-test-$$-$attempt"
			echo "CHOST=$CHOST"
		} >"$DIR/cluster.env"
		rm -rf "$DIR"/m?.data "$DIR"/m?.log
		launch 1 new
		launch 2 new
		launch 3 new
		rc=0
		wait_healthy 30 1 2 3 || rc=$?
		if ((rc == 0)); then
			echo "http://$CHOST:${PORTS[0]},http://$CHOST:${PORTS[1]},http://$CHOST:${PORTS[2]}" >"$DIR/endpoints"
			if [[ -n $owner ]]; then
				# The watchdog: kills whatever members run once the owner is gone.
				(
					while kill -0 "$owner" 2>/dev/null && [[ -d $DIR ]]; do sleep 0.5; done
					for n in 1 2 3; do
						member_alive "$n" && kill -KILL "$(cat "$DIR/m$n.pid")" 2>/dev/null
					done
					exit 0
				) </dev/null >/dev/null 2>&1 &
				echo $! >"$DIR/watchdog.pid"
			fi
			return 0
		fi
		kill_member 1
		kill_member 2
		kill_member 3
		if ((rc == 1)); then
			show_logs
			die "the cluster was not healthy within 30 s"
		fi
		if ! grep -qs "address already in use" "$DIR"/m?.log; then
			show_logs
			die "a member exited at start"
		fi
		echo "etcd_cluster.sh: a port was taken meanwhile; retrying with others" >&2
	done
	die "no start in 5 attempts"
}

case $VERB in
ports)
	# ports DIR N: prints N ports nobody listens on, below the ephemeral range (for processes
	# whose addresses must be known before they start, like sluiced --etcd candidates)
	pick_ports "${3:?count}"
	echo "${PORTS[*]}"
	;;
start)
	start_cluster "${3:-}"
	;;
kill)
	kill_member "${3:?member number}"
	;;
restart)
	n=${3:?member number}
	member_alive "$n" && die "member $n is running"
	launch "$n" existing
	wait_healthy 30 "$n" || { show_logs; die "member $n not healthy within 30 s of its restart"; }
	;;
wait)
	alive=()
	for n in 1 2 3; do member_alive "$n" && alive+=("$n"); done
	wait_healthy 30 "${alive[@]}" || { show_logs; die "the running members are not healthy within 30 s"; }
	;;
stop)
	if [[ -s $DIR/watchdog.pid ]]; then
		kill -KILL "$(cat "$DIR/watchdog.pid")" 2>/dev/null || true
		rm -f "$DIR/watchdog.pid"
	fi
	for n in 1 2 3; do kill_member "$n"; done
	;;
*)
	die "unknown verb '$VERB'"
	;;
esac
