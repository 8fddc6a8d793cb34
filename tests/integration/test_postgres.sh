#!/usr/bin/env bash
# test_postgres.sh - the postgres source against a real PostgreSQL started here.
#
# initdb in the test's temp dir (as `nobody` when run as root: initdb refuses root),
# wal_level=logical, listening on 127.0.0.1 on a free port (retried if taken) with its socket in
# the temp dir.  Checks:
#   1. an unreachable server: a clear error on stderr and in err, and the source keeps retrying
#      and picks up once the server is up;
#   2. the initial snapshot, then a scripted mix of inserts/updates/deletes in many
#      transactions, sluiced SIGKILLed in the middle of them and restarted on the same data dir,
#      more transactions during which PostgreSQL ends the replication connection (the source
#      reconnects): `sluice tail --consolidate --until T` equals the tables' contents
#      (COPY text format, the source's row form), with no loss and no duplicate;
#   3. a table without a replica identity gives a clear error in err, and one with REPLICA
#      IDENTITY DEFAULT reports its updates and deletes in err;
#   4. the slot's confirmed flush LSN advances (status updates are sent);
#   5. a dropped slot gives a clear error (stderr and err) and the source keeps retrying.
# Exits 77 (skipped) only when the PostgreSQL server binaries are missing.
# shellcheck source=lib.sh
source "$TESTLIB"

PGBIN=
for d in /usr/lib/postgresql/*/bin; do
	[[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && PGBIN=$d
done
if [[ -z $PGBIN ]] || ! command -v psql >/dev/null; then
	echo "SKIP: PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin)" >&2
	exit 77
fi

# Under /tmp, not $TMP: `nobody` must reach it whatever TMPDIR is, and the server's unix socket
# path must stay short.
PGDIR=$(mktemp -d /tmp/sluice-pg.XXXXXX)
PGDATA="$PGDIR/data"
PGLOG="$PGDIR/server.log"
PGPORT=
as_pg() { "$@"; }
if [[ $(id -u) -eq 0 ]]; then
	chown nobody "$PGDIR"
	as_pg() { runuser -u nobody -- "$@"; }
fi

pg_stop() {
	if [[ -f $PGDATA/postmaster.pid ]]; then
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -t 20 stop >/dev/null 2>&1 || true
	fi
}
_pg_cleanup() {
	local rc=$?
	set +e
	pg_stop
	if [[ $rc -ne 0 && -f $PGLOG ]]; then
		echo "---- $PGLOG" >&2
		tail -n 20 "$PGLOG" >&2
	fi
	rm -rf "$PGDIR"
	(exit "$rc")
	_cleanup
}
trap _pg_cleanup EXIT

as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-locale >"$PGDIR/initdb.log" 2>&1 ||
	fail "initdb failed: $(tail -n 5 "$PGDIR/initdb.log")"

# A port nothing listens on now (a refused connection is what "unreachable" looks like here).
free_port() {
	local p i
	for ((i = 0; i < 50; i++)); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	fail "no free port found"
}

# pg_start PORT: starts the server on PORT; 1 if it could not (e.g. the port was taken).
pg_start() {
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 30 -o \
		"-p $1 -c listen_addresses=127.0.0.1 -k $PGDIR -c wal_level=logical -c max_wal_senders=5 -c max_replication_slots=5 -c fsync=off" \
		start >/dev/null 2>&1
}

psql_() {
	timeout -k 5 60 psql -X -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"
}

PGPORT=$(free_port)
CONNINFO="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres connect_timeout=5"
SPEC="pg=postgres,conninfo=$CONNINFO,publication=pub,workers=2"
start_sluiced --source "$SPEC"

# 1. Unreachable: the error is on stderr and in err, and the source retries.
for ((i = 0; i < 100; i++)); do
	grep -q 'postgres source pg: cannot connect to PostgreSQL.*retrying' "$SLUICED_LOG" && break
	sleep 0.1
done
grep -q 'postgres source pg: cannot connect to PostgreSQL.*retrying' "$SLUICED_LOG" ||
	fail "no 'cannot connect' error on stderr: $(tail -n 5 "$SLUICED_LOG")"
wait_upper pg 1
sl tail --consolidate --until 1 pg >"$TMP/err0.out" || fail "tail of the error failed"
grep -q '^err	cannot connect to PostgreSQL' "$TMP/err0.out" ||
	fail "no 'cannot connect' row in err: $(cat "$TMP/err0.out")"
n_tries=$(grep -c 'cannot connect to PostgreSQL' "$SLUICED_LOG")

started=0
for ((i = 0; i < 5; i++)); do
	if pg_start "$PGPORT"; then
		started=1
		break
	fi
	# The port was taken meanwhile: another one, and a sluiced pointed at it.
	stop_sluiced
	PGPORT=$(free_port)
	CONNINFO="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres connect_timeout=5"
	SPEC="pg=postgres,conninfo=$CONNINFO,publication=pub,workers=2"
	SLUICED_DATA_DIR="$TMP/data.retry$i" start_sluiced --source "$SPEC"
done
[[ $started -eq 1 ]] || fail "PostgreSQL did not start: $(tail -n 20 "$PGLOG")"
DATA="$SLUICED_DATA"

(( $(grep -c 'cannot connect to PostgreSQL' "$SLUICED_LOG") >= n_tries )) || fail "log shrank?"

psql_ <<'SQL' || fail "schema setup failed"
CREATE TABLE t1 (id int PRIMARY KEY, name text, note text);
ALTER TABLE t1 REPLICA IDENTITY FULL;
CREATE SCHEMA s2;
CREATE TABLE s2.t2 (k text, v numeric, d date);
ALTER TABLE s2.t2 REPLICA IDENTITY FULL;
CREATE TABLE noident (x int);
CREATE TABLE t3 (id int PRIMARY KEY, v text);
INSERT INTO t3 VALUES (1, 'one'), (2, 'two');
INSERT INTO t1 SELECT g, 'name ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END
  FROM generate_series(1, 200) g;
INSERT INTO t1 VALUES (1000, E'tab\there', E'line\nbreak and back\\slash'), (1001, '', NULL);
INSERT INTO s2.t2 VALUES ('a', 1.5, '2024-01-02'), ('a', 1.5, '2024-01-02'), ('b', NULL, NULL);
INSERT INTO noident VALUES (1), (2);
CREATE PUBLICATION pub FOR TABLE t1, s2.t2, noident, t3;
SQL

# The source picks up by itself (it was retrying) and takes the snapshot.
for ((i = 0; i < 300; i++)); do
	grep -q 'postgres source pg: streaming slot' "$SLUICED_LOG" && break
	kill -0 "$SLUICED_PID" 2>/dev/null || fail "sluiced died: $(tail -n 20 "$SLUICED_LOG")"
	sleep 0.1
done
grep -q 'postgres source pg: streaming slot sluice_pg' "$SLUICED_LOG" ||
	fail "the source did not start streaming after the server came up: $(tail -n 5 "$SLUICED_LOG")"

# expected FILE: the tables' rows as `sluice tail --consolidate` prints them.
expected() {
	{
		psql_ -c "COPY (SELECT 'public.t1', * FROM t1) TO STDOUT"
		psql_ -c "COPY (SELECT 's2.t2', * FROM s2.t2) TO STDOUT"
		psql_ -c "COPY (SELECT 'public.noident', * FROM noident) TO STDOUT"
	} | sed -e 's/\\/\\\\/g' -e 's/\t/\\t/g' | sort | uniq -c |
		awk '{ c = $1; sub(/^ *[0-9]+ /, ""); print "ok\t" $0 "\t" c }' | sort >"$1"
	# (sorted as text on both sides: tail sorts by the unescaped row bytes)
}

# check_equal WHAT: polls (30 s) until the consolidated ok collection equals the tables.
check_equal() {
	local i u
	expected "$TMP/expected"
	for ((i = 0; i < 150; i++)); do
		kill -0 "$SLUICED_PID" 2>/dev/null || fail "sluiced died: $(tail -n 20 "$SLUICED_LOG")"
		u=$(source_upper pg)
		sl tail --consolidate --until "$u" pg >"$TMP/got.all" || fail "tail --consolidate failed"
		# (t3 has REPLICA IDENTITY DEFAULT: checked apart below)
		grep '^ok	' "$TMP/got.all" | grep -v '^ok	public\.t3\\t' | sort >"$TMP/got" || true
		cmp -s "$TMP/expected" "$TMP/got" && return 0
		sleep 0.2
	done
	expect_diff "$TMP/expected" "$TMP/got" "$1"
}

check_equal "after the snapshot"
s0=$(source_upper pg) # every transaction below takes one time of its own (each changes noident)
grep -q '^err	table public.noident has no replica identity' "$TMP/got.all" ||
	fail "no 'no replica identity' error for noident in err: $(grep '^err' "$TMP/got.all")"
grep -q '^err	table public.t3 has REPLICA IDENTITY DEFAULT, not FULL' "$TMP/got.all" ||
	fail "no 'not FULL' error for t3 in err: $(grep '^err' "$TMP/got.all")"
grep -q '^err	table public.t1' "$TMP/got.all" && fail "a FULL table was reported: $(grep '^err' "$TMP/got.all")"

# txns FROM TO: one transaction per k in [FROM, TO): a mix of inserts, updates, deletes.
txns() {
	local k
	for ((k = $1; k < $2; k++)); do
		echo "BEGIN;"
		echo "INSERT INTO t1 VALUES ($((10000 + k)), 'ins $k', E'x\\ty$k');"
		echo "UPDATE t1 SET name = name || ' u$k', note = NULL WHERE id = $((k % 200 + 1));"
		echo "DELETE FROM t1 WHERE id = $((10000 + k - 3));"
		echo "INSERT INTO s2.t2 VALUES ('k$((k % 7))', $k.25, '2025-01-01'::date + $k);"
		echo "UPDATE s2.t2 SET v = v + 1 WHERE k = 'k$((k % 5))';"
		echo "DELETE FROM s2.t2 WHERE k = 'k$((k % 11))' AND v > $((k - 3));"
		echo "INSERT INTO noident VALUES ($k);"
		echo "COMMIT;"
	done
}

# 2. Transactions, with sluiced SIGKILLed while they stream in.
txns 0 150 | psql_ >/dev/null || fail "transactions 0..150 failed"
# (pg_sleep paces them so that the kill below lands while they stream in)
txns 150 400 | sed 's/^COMMIT;$/COMMIT; SELECT pg_sleep(0.02);/' >"$TMP/txns2.sql"
bg psql_ -f "$TMP/txns2.sql"
PSQL_PID=$BG_PID
wait_upper pg $((s0 + 150 + 20))
kill -KILL "$SLUICED_PID"
wait "$SLUICED_PID" 2>/dev/null || true
kill -0 "$PSQL_PID" 2>/dev/null || fail "the transactions had all committed before the kill"
wait "$PSQL_PID" || fail "transactions 150..400 failed"
SLUICED_DATA_DIR="$DATA" start_sluiced --source "$SPEC"
grep -q "streaming slot sluice_pg" "$SLUICED_LOG" ||
	for ((i = 0; i < 200; i++)); do
		grep -q "streaming slot sluice_pg" "$SLUICED_LOG" && break
		sleep 0.1
	done
grep -q 'snapshot of' "$SLUICED_LOG" && fail "the restart took a new snapshot"
before_last=$(psql_ -c "SELECT pg_current_wal_lsn()")
# ... while PostgreSQL ends the replication connection in the middle of them: the source
# reconnects by itself (same process) and goes on where its durable state says.
u1=$(source_upper pg)
txns 400 450 | sed 's/^COMMIT;$/COMMIT; SELECT pg_sleep(0.02);/' >"$TMP/txns3.sql"
bg psql_ -f "$TMP/txns3.sql"
PSQL_PID=$BG_PID
wait_upper pg $((u1 + 10))
psql_ -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'sluice_pg'" >/dev/null ||
	fail "cannot end the walsender"
wait "$PSQL_PID" || fail "transactions 400..450 failed"
check_equal "after SIGKILL, restart and more transactions"
(( $(grep -c 'streaming slot sluice_pg' "$SLUICED_LOG") >= 2 )) ||
	fail "the source did not reconnect after its walsender ended: $(tail -n 5 "$SLUICED_LOG")"
# Every change was decodable: err holds only the connection error and noident's identity
# (and, should the killed process's walsender linger, "slot ... is active"; should the source
# connect between the server's start and the CREATE PUBLICATION, "publication does not exist";
# the walsender's end, "replication stream ended/connection lost").
grep '^err' "$TMP/got.all" | grep -v -e '^err	cannot connect to PostgreSQL' \
	-e '^err	table public.noident has no replica identity' -e 'is active for PID' \
	-e '^err	table public.t3 has REPLICA IDENTITY DEFAULT' \
	-e '^err	publication "pub" does not exist' -e '^err	replication stream ended' \
	-e '^err	replication connection lost' -e '^err	cannot send a status update' \
	-e '^err	replication stream failed' >"$TMP/err.other" || true
[[ ! -s $TMP/err.other ]] || fail "unexpected rows in err: $(head -n 5 "$TMP/err.other")"

# One transaction = one time: the 450 streamed transactions are at distinct times after s0.
u=$(source_upper pg)
(( u >= s0 + 450 )) || fail "upper $u: fewer times than transactions (from $s0)"

# 3b. A table with REPLICA IDENTITY DEFAULT: an update adds its new row and says in err that
# the old one was not retracted; a delete is reported in err.
psql_ -c "UPDATE t3 SET v = 'uno' WHERE id = 1" -c "DELETE FROM t3 WHERE id = 2" ||
	fail "t3 changes failed"
for ((i = 0; i < 100; i++)); do
	sl tail --consolidate --until "$(source_upper pg)" pg >"$TMP/got.all" || fail "tail failed"
	grep -q 'delete without the old row' "$TMP/got.all" && break
	sleep 0.1
done
grep -q '^err	table public.t3: update without the old row (REPLICA IDENTITY DEFAULT): the new row was added, the old one not retracted	1$' "$TMP/got.all" ||
	fail "no update error for t3: $(grep '^err' "$TMP/got.all")"
grep -q '^err	table public.t3: delete without the old row (REPLICA IDENTITY DEFAULT): the row was not retracted	1$' "$TMP/got.all" ||
	fail "no delete error for t3: $(grep '^err' "$TMP/got.all")"
grep -q '^ok	public.t3\\t1\\tuno	1$' "$TMP/got.all" || fail "t3's new row is missing: $(grep t3 "$TMP/got.all")"

# 4. The slot's confirmed flush LSN passed what was committed before the last batch.
for ((i = 0; i < 100; i++)); do
	ok=$(psql_ -c "SELECT confirmed_flush_lsn >= '$before_last'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'sluice_pg'")
	[[ $ok == t ]] && break
	sleep 0.1
done
[[ $ok == t ]] || fail "confirmed_flush_lsn did not pass $before_last"

stop_sluiced

# 5. A dropped slot: a clear error on stderr and in err, and the source keeps retrying.
# (the stopped sluiced's walsender may take a moment to go away: the drop is retried)
for ((i = 0; i < 100; i++)); do
	psql_ -c "SELECT pg_drop_replication_slot('sluice_pg')" >/dev/null 2>&1 && break
	sleep 0.1
done
(( i < 100 )) || fail "cannot drop the slot"
SLUICED_DATA_DIR="$DATA" start_sluiced --source "$SPEC"
for ((i = 0; i < 100; i++)); do
	(( $(grep -c 'replication slot "sluice_pg" does not exist.*retrying' "$SLUICED_LOG") >= 2 )) && break
	sleep 0.1
done
(( $(grep -c 'replication slot "sluice_pg" does not exist.*retrying' "$SLUICED_LOG") >= 2 )) ||
	fail "no repeated 'slot does not exist' error on stderr: $(tail -n 5 "$SLUICED_LOG")"
u2=$(source_upper pg)
sl tail --consolidate --until "$u2" pg >"$TMP/got.all" || fail "tail failed"
grep -q '^err	replication slot "sluice_pg" does not exist' "$TMP/got.all" ||
	fail "no 'slot does not exist' row in err: $(grep '^err' "$TMP/got.all")"
stop_sluiced
pass "snapshot, $u times, killed at upper >= $((s0 + 170)), SIGKILL + restart, retry while unreachable, replica identity error, dropped slot"
