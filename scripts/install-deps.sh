#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages sluice needs to build, test and fuzz.
#
# Skips apt entirely when every package is already installed, so an offline rerun works.
# Debian 12: libFuzzer (libclang_rt.fuzzer-x86_64.a) comes with libclang-rt-14-dev.
set -euo pipefail

PACKAGES=(
	build-essential gcc make cmake pkg-config   # the build
	clang libclang-rt-14-dev llvm               # libFuzzer and the sanitizer runtimes for clang
	libcmocka-dev                               # unit tests
	libssl-dev libxxhash-dev libpq-dev          # TLS, record checksums, the PostgreSQL source
	coreutils procps openssl                    # timeout, ps, openssl (test certificates): used by the test scripts
	libmicrohttpd-dev                           # the metrics endpoint (sluiced --metrics-listen)
	libsystemd-dev python3 systemd              # sd_notify; test_notify.sh's socket; systemd-analyze
	curl jq                                     # test_metrics.sh, test_logs.sh: scrape, parse JSON
	prometheus                                  # promtool: test_metrics.sh lints the metrics
	postgresql                                  # the server test_postgres.sh starts (initdb, pg_ctl, psql)
	redis-server libhiredis-dev                 # the Redis pub/sub comparison of sluice_bench
	valgrind cppcheck clang-tidy                # the valgrind and static-analysis stages of test.sh
	groff-base man-db                           # test_manpages.sh: groff -man -ww and man -l render the man pages
	libcurl4-openssl-dev libjansson-dev         # coordination (src/coord): etcd's JSON gateway
	etcd-server                                 # the 3-member etcd clusters of itest_coord and test_etcd_*.sh
	iproute2                                    # ip netns: test_etcd_partition.sh's namespace and veth pair
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install-deps: all packages present (${#PACKAGES[@]})"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=
if [[ $(id -u) -ne 0 ]]; then
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
