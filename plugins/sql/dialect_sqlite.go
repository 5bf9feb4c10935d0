package sqlbackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/koi-im/koi/sdk"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteDialect drives modernc.org/sqlite, a pure Go SQLite.
type sqliteDialect struct{}

func (sqliteDialect) name() string { return "sqlite" }

func (d sqliteDialect) open(s Settings, _ sdk.Logger) (*sql.DB, error) {
	dsn, err := d.prepareDSN(s.DSN)
	if err != nil {
		return nil, err
	}
	return sql.Open("sqlite", dsn)
}

// checkServer has nothing to refuse: the library is compiled in.
func (sqliteDialect) checkServer(ctx context.Context, db *sql.DB, _ Settings) (string, error) {
	var v string
	if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v); err != nil {
		return "", err
	}
	return "SQLite " + v, nil
}

// sqlitePragmas are applied to every new connection. WAL lets readers run
// beside the one writer; busy_timeout makes a second writer wait for the
// first instead of failing at once. The last three are for the archive's
// write rate, the heaviest load on this store: a 32 MiB page cache (the
// default 2 MiB cannot hold the archive's index pages, which every insert
// touches), temporary b-trees in memory, and a checkpoint every 10,000 WAL
// pages rather than 1,000, so that checkpoints, which write each page a
// second time, run a tenth as often.
func sqlitePragmas() [7][2]string {
	return [...][2]string{
		{"busy_timeout", "5000"},
		{"journal_mode", "WAL"},
		{"foreign_keys", "on"},
		{"synchronous", "NORMAL"},
		{"cache_size", "-32768"},
		{"temp_store", "MEMORY"},
		{"wal_autocheckpoint", "10000"},
	}
}

// prepareDSN takes a file path, optionally followed by "?" and driver
// parameters, creates the file's directory and adds koi's pragmas unless the
// operator set them. Every read-write transaction begins IMMEDIATE: it takes
// the write lock up front, so a transaction that reads and then writes (Pop,
// a roster version bump) cannot fail half-way with SQLITE_BUSY_SNAPSHOT and
// two of them cannot interleave.
func (sqliteDialect) prepareDSN(dsn string) (string, error) {
	path, rawQuery, _ := strings.Cut(dsn, "?")
	switch {
	case path == "":
		return "", errors.New("dsn: empty; want a database file path such as data/koi.db")
	case strings.HasPrefix(path, "file:"):
		return "", fmt.Errorf("dsn %q: give a plain file path such as data/koi.db, not a file: URI", dsn)
	case path == ":memory:" || strings.Contains(rawQuery, "mode=memory"):
		return "", fmt.Errorf("dsn %q: an in-memory database would lose every account at restart; give a file path", dsn)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("dsn %q: parameters: %w", dsn, err)
	}
	if q.Has("_txlock") {
		return "", fmt.Errorf("dsn %q: _txlock is set by koi (immediate) and cannot be changed", dsn)
	}
	for _, p := range sqlitePragmas() {
		if !hasPragma(q, p[0]) {
			q.Add("_pragma", p[0]+"("+p[1]+")")
		}
	}
	q.Set("_txlock", "immediate")
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("dsn: create directory: %w", err)
		}
	}
	return path + "?" + q.Encode(), nil
}

// hasPragma reports whether the operator already set pragma name, in
// either the _pragma=name(value) form or as one of the driver's shorthand
// keys.
func hasPragma(q url.Values, name string) bool {
	for _, v := range q["_pragma"] {
		v = strings.ToLower(strings.TrimSpace(v))
		if strings.HasPrefix(v, name+"(") || strings.HasPrefix(v, name+"=") || strings.HasPrefix(v, name+" ") {
			return true
		}
	}
	shorthands := map[string][]string{
		"busy_timeout": {"_busy_timeout", "_timeout"},
		"journal_mode": {"_journal_mode", "_journal"},
		"foreign_keys": {"_foreign_keys", "_fk"},
		"synchronous":  {"_synchronous", "_sync"},
	}
	for _, k := range shorthands[name] {
		if q.Has(k) {
			return true
		}
	}
	return false
}

// rebind is the identity: SQLite understands "?".
func (sqliteDialect) rebind(query string) string { return query }

// maxIdentLen is not a SQLite limit but PostgreSQL's (63), the smallest of
// the databases koi targets, so a schema tested on SQLite fits them all.
func (sqliteDialect) maxIdentLen() int { return 63 }

func (sqliteDialect) columnType(t colType, size int) (string, error) {
	switch t {
	case colKey:
		// SQLite ignores the length; the store checks it so data stays
		// movable to databases that do not.
		return fmt.Sprintf("VARCHAR(%d)", size), nil
	case colText:
		return "TEXT", nil
	case colBlob:
		return "BLOB", nil
	case colInt:
		return "INTEGER", nil
	case colBigInt:
		return "BIGINT", nil
	case colAutoID:
		// AUTOINCREMENT never reuses an id, even after the newest row
		// is deleted, so ids order messages by arrival.
		return "INTEGER PRIMARY KEY AUTOINCREMENT", nil
	}
	return "", fmt.Errorf("unknown column type %d", t)
}

func (sqliteDialect) tableOptions() string { return "" }

func (sqliteDialect) createIndex(name, table string, cols []string) string {
	return fmt.Sprintf("CREATE INDEX %s ON %s (%s)", name, table, strings.Join(cols, ", "))
}

func (sqliteDialect) dropIndex(name, _ string) string { return "DROP INDEX " + name }

func (sqliteDialect) upsert(table string, keys, cols []string) string {
	return onConflictUpsert(table, keys, cols)
}

func (sqliteDialect) insertOrIgnore() string { return "INSERT OR IGNORE" }

func (sqliteDialect) insertNew(table string, keys, cols []string) string {
	return onConflictInsertNew(table, keys, cols)
}

func (sqliteDialect) bumpCounter(table, key, col string) string {
	return onConflictBump(table, key, col)
}

func (sqliteDialect) returningID() bool { return false }

// lockRows is empty: the transaction already holds SQLite's single write
// lock (BEGIN IMMEDIATE).
func (sqliteDialect) lockRows() string { return "" }

// readTx needs no isolation level: a SQLite transaction always reads one
// snapshot.
func (sqliteDialect) readTx() *sql.TxOptions { return &sql.TxOptions{ReadOnly: true} }

func (sqliteDialect) transactionalDDL() bool { return true }

// lockMigrations has nothing to do: a migration's transaction begins
// IMMEDIATE, which already excludes every other writer.
func (sqliteDialect) lockMigrations(context.Context, *sql.Conn) (func(), error) {
	return func() {}, nil
}

func (sqliteDialect) classify(err error) errClass {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return errOther
	}
	code := se.Code()
	switch code {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return errUnique
	}
	switch code & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM,
		sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL:
		return errTransient
	}
	return errOther
}
