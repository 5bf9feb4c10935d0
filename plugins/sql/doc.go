// Package sqlbackend is koi's SQL storage backend: accounts with SCRAM
// credentials, rosters, offline messages, vcard-temp and private XML storage,
// the message archive, blocklists, FAST tokens and pubsub nodes and items,
// all read-write, on SQLite, PostgreSQL or MySQL/MariaDB.
//
// The plugin's config block:
//
//	config = {
//	  driver            = "postgres"      # required: "sqlite", "postgres", "mysql" (or "mariadb")
//	  dsn               = "postgres://koi@db:5432/koi?sslmode=verify-full"  # required, see below
//	  schema            = "koi"           # postgres only: search_path for koi's tables; must exist
//	  scram_iterations  = 4096            # PBKDF2 count for new passwords (4096..10000000)
//	  max_open_conns    = 0               # connection pool; 0 keeps database/sql's default (no limit)
//	  max_idle_conns    = 0               # 0 keeps database/sql's default (2)
//	  conn_max_lifetime = "30m"           # a Go duration; unset keeps connections forever
//	}
//
// The dsn is, for SQLite, a file path (its directory is created); for
// PostgreSQL a URL or key=value string as pgx reads it; for MySQL/MariaDB
// user:password@tcp(host:3306)/dbname?params as go-sql-driver/mysql reads
// it. Errors about a dsn never repeat its password. Every config error names
// the key at fault.
//
// Passwords are never stored, only SCRAM credentials for SHA-1 and SHA-256.
//
// # Databases
//
// SQLite runs in WAL mode with busy_timeout 5000 ms, foreign keys on,
// synchronous NORMAL, a 32 MiB page cache per connection (cache_size
// -32768), temp_store MEMORY and wal_autocheckpoint 10000 pages, each unless
// the dsn sets it (e.g. "data/koi.db?_pragma=cache_size(-8192)"), and
// read-write transactions begin IMMEDIATE. Writes queue for SQLite's one
// write lock in the plugin, in order, rather than poll SQLite for it.
// PostgreSQL reads run in REPEATABLE READ so a roster is one snapshot; the
// database must be UTF8. MySQL (5.7.7+) and MariaDB (10.3+) tables are InnoDB
// with utf8mb4 text, the connection is utf8mb4 in strict SQL mode.
//
// The core hands the store JIDs already prepared (PRECIS), so keys are
// compared byte for byte on every database: SQLite's default BINARY
// collation, COLLATE "C" on PostgreSQL, VARBINARY on MySQL (utf8mb4_bin
// would still equate 'ann' and 'ann ' on MariaDB, a PAD SPACE collation).
// Nothing is case-folded, accent-folded or normalised behind the core's
// back, and listings come back in byte order everywhere.
//
// Strings that are part of a key (hosts, user names, JIDs, private-storage
// names and namespaces) are limited to 255 characters and rejected beyond
// with sdk.ErrInvalid; see maxKeyChars for why. All text must be valid
// UTF-8 without NUL bytes, as PostgreSQL requires, so the data stays
// portable.
//
// # Migrations
//
// The schema is created and upgraded at start by numbered migrations
// (table koi_schema_migrations); `koi-backend-sql migrate`, which
// `koictl db migrate` runs, does the same ahead of a start. A migration that
// fails leaves the database as it was: on SQLite and PostgreSQL it runs in
// one transaction; MySQL commits DDL statement by statement, so there each
// step carries its undo, the progress is recorded in koi_schema_progress,
// and a failed (or, at the next start, an interrupted) migration is undone
// step by step; the version row is written last. A database lock keeps two
// processes from migrating at once.
//
// # Failures
//
// Every call takes its deadline from its context. A database that is down,
// restarting, or that ends the plugin's sessions gives sdk.ErrUnavailable,
// which koi turns into a wait-type error for the client; the pool drops its
// idle connections when one is found broken and reconnects on the next
// call. A transaction the database aborts to break a deadlock runs again.
// Changes that span rows (an item with its groups and the roster version, a
// Pop that must not deliver twice) are single transactions; Pop locks the
// rows it reads (SELECT ... FOR UPDATE where SQLite's write lock does not
// already exclude other writers).
//
// Publish-subscribe nodes (PEP and the pubsub service, pubsub.go) live in
// koi_pubsub_nodes, with a generated id their items, affiliations and
// subscriptions refer to; a publish locks its node's row, so the trim to
// the node's max items that follows it is exact under concurrent
// publishers.
//
// Statements are prepared once per connection and cached.
//
// What differs between databases (placeholders, upserts, column types,
// generated ids, row locking, index DDL, identifier limits, error codes)
// lives behind the dialect interface.
package sqlbackend
