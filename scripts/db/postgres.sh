#!/usr/bin/env bash
# postgres.sh DIR -> a throwaway PostgreSQL on 127.0.0.1:$PGPORT (default 15432),
# trust auth, user postgres, database test. Run as root; DIR and its parents must be
# traversable by the user postgres (so not under /root). Then, for the tests:
#   export KOI_TEST_POSTGRES_DSN="postgres://postgres@127.0.0.1:15432/test?sslmode=disable"
# Verified recipe: docs/test-services.md (PostgreSQL 15.18, Debian 12).
set -euo pipefail
D=${1:?usage: postgres.sh DIR}; PORT=${PGPORT:-15432}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
rm -rf "$D"; install -d -o postgres -g postgres "$D"
runuser -u postgres -- "$PGBIN/initdb" -D "$D/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync >"$D/initdb.log"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $D -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
psql -h 127.0.0.1 -p "$PORT" -U postgres -qc 'CREATE DATABASE test'
echo "PostgreSQL on 127.0.0.1:$PORT; stop: runuser -u postgres -- $PGBIN/pg_ctl -D $D/data -m fast -w stop"
