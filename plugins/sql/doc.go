// Package sqlbackend is koi's SQL storage backend: accounts with SCRAM
// credentials, rosters, offline messages, vcard-temp and private XML storage,
// all read-write, in one database.
//
// The plugin's config block:
//
//	config = {
//	  driver            = "sqlite"        # required; "postgres" and "mysql" are planned
//	  dsn               = "data/koi.db"   # required; SQLite: a file path, its directory is created
//	  scram_iterations  = 4096            # PBKDF2 count for new passwords (4096..10000000)
//	  max_open_conns    = 0               # connection pool; 0 keeps database/sql's default
//	  max_idle_conns    = 0
//	  conn_max_lifetime = "30m"           # a Go duration; unset keeps connections forever
//	}
//
// Passwords are never stored, only SCRAM credentials for SHA-1 and SHA-256.
// SQLite runs in WAL mode with busy_timeout 5000 ms, foreign keys on and
// synchronous NORMAL, and read-write transactions begin IMMEDIATE.
//
// The schema is created and upgraded at start by numbered migrations
// (table koi_schema_migrations), each in one transaction. Strings that are
// part of a key (hosts, user names, JIDs, private-storage names and
// namespaces) are limited to 255 characters and rejected beyond with
// sdk.ErrInvalid; see maxKeyChars for why. All text must be valid UTF-8
// without NUL bytes, as PostgreSQL requires, so the data stays portable.
//
// What differs between databases (placeholders, upserts, column types,
// generated ids, row locking, index DDL, identifier limits, error codes)
// lives behind the dialect interface; adding a database means adding one.
package sqlbackend
