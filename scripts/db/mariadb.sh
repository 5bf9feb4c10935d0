#!/usr/bin/env bash
# mariadb.sh DIR -> a throwaway MariaDB on 127.0.0.1:$MYSQL_PORT (default 13306),
# root with an empty password, database test. Run as root. Then, for the tests:
#   export KOI_TEST_MYSQL_DSN='root@tcp(127.0.0.1:13306)/test'
# Verified recipe: docs/test-services.md (MariaDB 10.11.19, Debian 12).
set -euo pipefail
D=${1:?usage: mariadb.sh DIR}; PORT=${MYSQL_PORT:-13306}
rm -rf "$D"; install -d -o mysql -g mysql "$D" "$D/data"
mariadb-install-db --no-defaults --user=mysql --datadir="$D/data" \
  --auth-root-authentication-method=normal --skip-test-db >"$D/install-db.log" 2>&1
mariadbd --no-defaults --user=mysql --datadir="$D/data" --socket="$D/mysqld.sock" --pid-file="$D/mysqld.pid" \
  --port="$PORT" --bind-address=127.0.0.1 --log-error="$D/error.log" --skip-log-bin \
  --innodb-flush-log-at-trx-commit=0 >/dev/null 2>&1 &
echo $! >"$D/mariadbd.fgpid"
for i in $(seq 300); do mariadb-admin --no-defaults -h127.0.0.1 -P"$PORT" -uroot ping >/dev/null 2>&1 && break; sleep 0.1; done
mariadb --no-defaults -h127.0.0.1 -P"$PORT" -uroot -e 'CREATE DATABASE test'
echo "MariaDB on 127.0.0.1:$PORT; stop: kill \$(cat $D/mariadbd.fgpid)"
