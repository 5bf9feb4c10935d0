package sqlbackend

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/koi-im/koi/sdk"
)

// dialect hides what differs between SQL databases. Everything else in this
// package is written once, in portable SQL with "?" placeholders, and passes
// through a dialect where the databases disagree.
type dialect interface {
	// name is the canonical value of the driver config key.
	name() string
	// open returns a connection pool for s without connecting; errors name
	// the config key at fault and never repeat a password.
	open(s Settings, log sdk.Logger) (*sql.DB, error)
	// checkServer runs once on a fresh pool, before migrations: it refuses
	// a server koi cannot use correctly and describes the server for the
	// log.
	checkServer(ctx context.Context, db *sql.DB, s Settings) (string, error)
	// rebind rewrites "?" placeholders into the database's own ("$1" ...).
	rebind(query string) string
	// maxIdentLen is the longest table or index name the database accepts.
	maxIdentLen() int
	// columnType is the SQL type of a column; size is a maximum length in
	// characters for colKey.
	columnType(t colType, size int) (string, error)
	// tableOptions follows the closing parenthesis of CREATE TABLE.
	tableOptions() string
	// createIndex is the statement creating a (non-unique) index, dropIndex
	// the one removing it.
	createIndex(name, table string, cols []string) string
	dropIndex(name, table string) string
	// upsert inserts keys+cols, or on a conflict over keys replaces cols
	// with the inserted values.
	upsert(table string, keys, cols []string) string
	// bumpCounter inserts (key, 1), or on a conflict over key adds one to
	// col.
	bumpCounter(table, key, col string) string
	// returningID reports whether a new row's generated id is read with
	// "RETURNING id" rather than the driver's LastInsertId.
	returningID() bool
	// lockRows is appended to a SELECT whose rows the transaction is about
	// to delete, so a concurrent transaction cannot read them meanwhile.
	lockRows() string
	// readTx are the options of a read-only transaction that must see one
	// snapshot across several statements.
	readTx() *sql.TxOptions
	// transactionalDDL reports whether CREATE, ALTER and DROP roll back
	// with their transaction. MySQL commits them implicitly, so its
	// migrations undo their steps by hand (see migrate).
	transactionalDDL() bool
	// lockMigrations serialises migrations between processes sharing the
	// database, on conn, until the returned function runs.
	lockMigrations(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	// classify sorts a driver error for mapping to the sdk errors.
	classify(err error) errClass
}

// colType is a portable column type.
type colType int

const (
	// colKey is a string that takes part in a key or index; its size
	// matters to MySQL's index length limit.
	colKey colType = iota
	// colText is a string of any length, never indexed.
	colText
	// colBlob is a short binary value (salts, SCRAM keys).
	colBlob
	// colInt is a 32-bit integer, also used for booleans (0/1).
	colInt
	// colBigInt is a 64-bit integer.
	colBigInt
	// colAutoID is a 64-bit integer primary key the database assigns in
	// increasing order.
	colAutoID
)

// errClass is what the store needs to know about a driver error.
type errClass int

const (
	errOther errClass = iota
	// errUnique is a primary key or unique constraint violation.
	errUnique
	// errTransient is a failure that may go away: busy, locked, timed
	// out, overloaded.
	errTransient
	// errConnLost is a connection that broke or could not be made: the
	// server went away, restarted or killed the session.
	errConnLost
	// errRetry is a transaction the database aborted to break a deadlock
	// or a serialisation conflict; running it again is safe.
	errRetry
	// errMissing is a table, column or index that does not exist; undoing
	// a migration step that never ran gives it.
	errMissing
)

type columnDef struct {
	name string
	typ  colType
	size int
}

type foreignKey struct {
	cols     []string
	refTable string
	refCols  []string
}

type tableDef struct {
	name       string
	cols       []columnDef
	primaryKey []string
	// unique lists column sets that are unique besides the primary key.
	unique     [][]string
	foreignKey []foreignKey
}

// checkIdent rejects a name the dialect could not use; it guards schema
// changes written for one database against another's limits.
func checkIdent(d dialect, name string) error {
	if name == "" || len(name) > d.maxIdentLen() {
		return fmt.Errorf("identifier %q: %s allows 1 to %d bytes", name, d.name(), d.maxIdentLen())
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return fmt.Errorf("identifier %q: only a-z, 0-9 and _ are portable", name)
		}
	}
	return nil
}

// createTableSQL renders t for d. ifNotExists is for the bookkeeping table
// only; versioned migrations must fail on a table that is already there.
func createTableSQL(d dialect, t tableDef, ifNotExists bool) (string, error) {
	if err := checkIdent(d, t.name); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("CREATE TABLE ")
	if ifNotExists {
		b.WriteString("IF NOT EXISTS ")
	}
	b.WriteString(t.name)
	b.WriteString(" (")
	for i, c := range t.cols {
		if err := checkIdent(d, c.name); err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteString(", ")
		}
		typ, err := d.columnType(c.typ, c.size)
		if err != nil {
			return "", fmt.Errorf("table %s column %s: %w", t.name, c.name, err)
		}
		b.WriteString(c.name)
		b.WriteByte(' ')
		b.WriteString(typ)
		if c.typ != colAutoID {
			b.WriteString(" NOT NULL")
		}
	}
	if len(t.primaryKey) > 0 {
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", strings.Join(t.primaryKey, ", "))
	}
	for _, u := range t.unique {
		fmt.Fprintf(&b, ", UNIQUE (%s)", strings.Join(u, ", "))
	}
	for _, fk := range t.foreignKey {
		fmt.Fprintf(&b, ", FOREIGN KEY (%s) REFERENCES %s (%s)",
			strings.Join(fk.cols, ", "), fk.refTable, strings.Join(fk.refCols, ", "))
	}
	b.WriteString(")")
	b.WriteString(d.tableOptions())
	return b.String(), nil
}

// createIndexSQL renders an index after checking its name.
func createIndexSQL(d dialect, name, table string, cols ...string) (string, error) {
	if err := checkIdent(d, name); err != nil {
		return "", err
	}
	return d.createIndex(name, table, cols), nil
}

// placeholders returns "?, ?, ..." with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// onConflictUpsert is upsert for SQLite and PostgreSQL, which share the
// INSERT ... ON CONFLICT syntax.
func onConflictUpsert(table string, keys, cols []string) string {
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

// onConflictBump is bumpCounter for SQLite and PostgreSQL.
func onConflictBump(table, key, col string) string {
	return fmt.Sprintf("INSERT INTO %[1]s (%[2]s, %[3]s) VALUES (?, 1) ON CONFLICT (%[2]s) DO UPDATE SET %[3]s = %[1]s.%[3]s + 1",
		table, key, col)
}
