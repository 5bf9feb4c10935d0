package sqlbackend

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteDialect drives modernc.org/sqlite, a pure Go SQLite.
type sqliteDialect struct{}

func (sqliteDialect) name() string       { return "sqlite" }
func (sqliteDialect) driverName() string { return "sqlite" }

// sqlitePragmas are applied to every new connection. WAL lets readers run
// beside the one writer; busy_timeout makes a second writer wait for the
// first instead of failing at once.
func sqlitePragmas() [4][2]string {
	return [...][2]string{
		{"busy_timeout", "5000"},
		{"journal_mode", "WAL"},
		{"foreign_keys", "on"},
		{"synchronous", "NORMAL"},
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

func (sqliteDialect) upsert(table string, keys, cols []string) string {
	all := append(append([]string(nil), keys...), cols...)
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) ",
		table, strings.Join(all, ", "), placeholders(len(all)), strings.Join(keys, ", "))
	if len(cols) == 0 {
		return q + "DO NOTHING"
	}
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = excluded." + c
	}
	return q + "DO UPDATE SET " + strings.Join(set, ", ")
}

func (sqliteDialect) bumpCounter(table, key, col string) string {
	return fmt.Sprintf("INSERT INTO %[1]s (%[2]s, %[3]s) VALUES (?, 1) ON CONFLICT (%[2]s) DO UPDATE SET %[3]s = %[1]s.%[3]s + 1",
		table, key, col)
}

func (sqliteDialect) returningID() bool { return false }

// lockRows is empty: the transaction already holds SQLite's single write
// lock (BEGIN IMMEDIATE).
func (sqliteDialect) lockRows() string { return "" }

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
