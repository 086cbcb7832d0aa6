#!/usr/bin/env bash
# Install the servers of the production-shaped e2e deployment (tests/e2e/celery): PostgreSQL 15
# (the metadata database) and Redis (the Celery broker), from Debian's packages.
#
# Idempotent and quiet: when both are installed it prints nothing and exits 0 (no apt-get
# update, no network). Otherwise it needs root (or sudo) and apt-get; it fails loudly with the
# reason if either cannot be installed. It only installs: the tests start each server
# themselves, on 127.0.0.1, with their own data directory, and stop it.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
missing=()
[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && [ -x "$PG_BIN/postgres" ] || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-services: installing ${missing[*]} (Debian packages)" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
else
    echo "install-services: ${missing[*]} missing and not root (no sudo): install them by hand" >&2
    exit 1
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "install-services: ${missing[*]} missing and no apt-get on this machine" >&2
    exit 1
}
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The packages' own init scripts must not start system-wide servers (ports 5432, 6379): the
# tests start their own. policy-rc.d exit 101 = "action forbidden" for invoke-rc.d.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=1
fi
status=0
{ "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$log" 2>&1 || status=$?
[ -n "$made_policy" ] && "${sudo[@]}" rm -f "$policy"
if [ $status -ne 0 ]; then
    echo "install-services: apt-get failed (exit $status) installing ${missing[*]}:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
[ -x "$PG_BIN/initdb" ] || { echo "install-services: no $PG_BIN/initdb after installing postgresql" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || { echo "install-services: no redis-server after installing it" >&2; exit 1; }
echo "install-services: installed ${missing[*]}" >&2
