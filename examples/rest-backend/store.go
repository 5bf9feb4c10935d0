package main

import (
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite"
)

const schema = `
CREATE TABLE IF NOT EXISTS users (
	host TEXT NOT NULL, user TEXT NOT NULL,
	salt BLOB NOT NULL, iterations INTEGER NOT NULL, stored_key BLOB NOT NULL, server_key BLOB NOT NULL,
	PRIMARY KEY (host, user)
);
CREATE TABLE IF NOT EXISTS roster_versions (owner TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS roster_items (
	owner TEXT NOT NULL, jid TEXT NOT NULL, name TEXT NOT NULL, subscription TEXT NOT NULL,
	ask INTEGER NOT NULL, approved INTEGER NOT NULL, groups_json TEXT NOT NULL,
	PRIMARY KEY (owner, jid)
);
CREATE TABLE IF NOT EXISTS roster_pending (owner TEXT NOT NULL, jid TEXT NOT NULL, stanza TEXT NOT NULL, PRIMARY KEY (owner, jid));
CREATE TABLE IF NOT EXISTS archive (
	owner TEXT NOT NULL, sid TEXT NOT NULL, peer TEXT NOT NULL, peer_resource TEXT NOT NULL,
	stamp_ms INTEGER NOT NULL, outgoing INTEGER NOT NULL, stanza TEXT NOT NULL, body TEXT NOT NULL,
	PRIMARY KEY (owner, sid)
);
CREATE INDEX IF NOT EXISTS archive_peer ON archive (owner, peer, sid);
CREATE TABLE IF NOT EXISTS archive_prefs (owner TEXT PRIMARY KEY, mode TEXT NOT NULL, always_json TEXT NOT NULL, never_json TEXT NOT NULL);
`

// store is the service's SQLite database.
type store struct {
	db *sql.DB
}

func openStore(path string) (*store, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// One connection: SQLite serialises writers anyway, and this makes
	// every read-modify-write (roster versions) a critical section.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating the schema in %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }
