# koi with accounts in PostgreSQL and everything else in MariaDB.
#
#   make build && bin/koi -config examples/configs/mixed-postgres-mariadb.hcl
#
# Two plugin blocks run the same binary, koi-backend-sql, as two processes
# with different configs: "accounts" keeps users and their SCRAM keys in
# PostgreSQL, "data" keeps rosters, offline messages, vCards and private
# XML in MariaDB (or MySQL). Each creates and upgrades its own tables at
# start; `bin/koictl -config examples/configs/mixed-postgres-mariadb.hcl
# db migrate` does it ahead of time and prints the schema versions.
#
# The databases must exist (the PostgreSQL schema too, when one is set):
#   psql -h db1 -U postgres -c 'CREATE DATABASE koi'
#   mariadb -h db2 -u root -e 'CREATE DATABASE koi'
# Keep passwords out of this file: set the dsn from the environment,
#   KOI_PLUGIN__ACCOUNTS__CONFIG__DSN='postgres://koi:secret@db1:5432/koi?sslmode=verify-full'
#   KOI_PLUGIN__DATA__CONFIG__DSN='koi:secret@tcp(db2:3306)/koi?tls=true'
#
# Relative paths are relative to this file.

log { level = "info"  format = "text" }

listen "c2s"     { address = "0.0.0.0:5222"  starttls = "required" }
listen "c2s_tls" { address = "0.0.0.0:5223" }

tls { cert_file = "../../data/tls/cert.pem"  key_file = "../../data/tls/key.pem" }

plugin "accounts" {
  command = "../../bin/plugins/koi-backend-sql"
  config = {
    driver            = "postgres"
    dsn               = "postgres://koi@127.0.0.1:5432/koi?sslmode=disable"
    schema            = "koi"     # optional: the search_path for koi's tables; must exist
    max_open_conns    = 20        # logins run concurrently; 0 = unlimited
    max_idle_conns    = 10
    conn_max_lifetime = "30m"
    scram_iterations  = 4096
  }
}

plugin "data" {
  command = "../../bin/plugins/koi-backend-sql"
  config = {
    driver            = "mariadb" # the same as "mysql"
    dsn               = "koi@tcp(127.0.0.1:3306)/koi"
    max_open_conns    = 20
    max_idle_conns    = 10
    conn_max_lifetime = "5m"      # below the server's wait_timeout
  }
}

host "example.org" {
  auth    = "accounts"
  roster  = "data"
  offline = "data"
  vcard   = "data"
  private = "data"
}

server { data_dir = "../../data" }
