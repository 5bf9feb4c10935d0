package sqlbackend

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

// Store is koi's SQL backend. It serves every feature read-write and is
// safe for concurrent use.
type Store struct {
	db         *sql.DB
	d          dialect
	iterations int
	log        hclog.Logger
}

var (
	_ sdk.Backend       = (*Store)(nil)
	_ sdk.Pinger        = (*Store)(nil)
	_ sdk.Auth          = (*Store)(nil)
	_ sdk.AuthAdmin     = (*Store)(nil)
	_ sdk.Roster        = (*Store)(nil)
	_ sdk.RosterWriter  = (*Store)(nil)
	_ sdk.Offline       = (*Store)(nil)
	_ sdk.VCard         = (*Store)(nil)
	_ sdk.VCardWriter   = (*Store)(nil)
	_ sdk.Private       = (*Store)(nil)
	_ sdk.PrivateWriter = (*Store)(nil)
)

// Open connects to the database described by c and applies any pending
// schema migrations. log may be nil.
func Open(ctx context.Context, c Settings, log hclog.Logger) (*Store, error) {
	return open(ctx, c, log, schema())
}

// open is Open with the migration list as a parameter, so tests can make a
// migration fail.
func open(ctx context.Context, c Settings, log hclog.Logger, migs []migration) (*Store, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	d, err := c.check()
	if err != nil {
		return nil, err
	}
	dsn, err := d.prepareDSN(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("sql backend config: %w", err)
	}
	db, err := sql.Open(d.driverName(), dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", d.name(), err)
	}
	db.SetMaxOpenConns(c.MaxOpenConns)
	if c.MaxIdleConns > 0 {
		db.SetMaxIdleConns(c.MaxIdleConns)
	}
	db.SetConnMaxLifetime(c.ConnMaxLifetime)
	s := &Store{db: db, d: d, iterations: c.SCRAMIterations, log: log}
	if s.iterations == 0 {
		s.iterations = sdk.DefaultSCRAMIterations
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, s.fail("open "+d.name()+" database", err)
	}
	if err := migrate(ctx, db, d, migs, log); err != nil {
		db.Close()
		return nil, s.fail("schema", err)
	}
	return s, nil
}

// Capabilities declares every feature read-write, with SCRAM.
func (s *Store) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		Auth:    sdk.AuthCapabilities{Access: sdk.AccessReadWrite, SCRAM: true},
		Roster:  sdk.AccessReadWrite,
		Offline: sdk.AccessReadWrite,
		VCard:   sdk.AccessReadWrite,
		Private: sdk.AccessReadWrite,
	}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.fail("ping", s.db.PingContext(ctx))
}

// Close closes the connection pool.
func (s *Store) Close() error {
	return s.db.Close()
}

// q adapts a query written with "?" placeholders to the dialect.
func (s *Store) q(query string) string { return s.d.rebind(query) }

// write runs fn in a read-write transaction, committed if fn succeeds.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	return s.inTx(ctx, op, nil, fn)
}

// read runs fn in a read-only transaction, for reads that must see one
// consistent state.
func (s *Store) read(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	return s.inTx(ctx, op, &sql.TxOptions{ReadOnly: true}, fn)
}

func (s *Store) inTx(ctx context.Context, op string, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return s.fail(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return s.fail(op, err)
	}
	return s.fail(op, tx.Commit())
}

// insertID inserts a row and returns the id the database gave it.
func (s *Store) insertID(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	if s.d.returningID() {
		var id int64
		err := tx.QueryRowContext(ctx, s.q(query+" RETURNING id"), args...).Scan(&id)
		return id, err
	}
	res, err := tx.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// fail maps err to the sdk errors the core understands and names op. Errors
// that already are sdk errors keep their meaning.
func (s *Store) fail(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sdk.ErrNotFound), errors.Is(err, sdk.ErrExists),
		errors.Is(err, sdk.ErrInvalid), errors.Is(err, sdk.ErrUnavailable),
		errors.Is(err, sdk.ErrReadOnly):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, sdk.ErrNotFound)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, sql.ErrConnDone), errors.Is(err, driver.ErrBadConn),
		isClosedDB(err):
		return fmt.Errorf("%s: %w: %w", op, sdk.ErrUnavailable, err)
	}
	switch s.d.classify(err) {
	case errUnique:
		return fmt.Errorf("%s: %w: %w", op, sdk.ErrExists, err)
	case errTransient:
		return fmt.Errorf("%s: %w: %w", op, sdk.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isClosedDB recognises database/sql's error for a closed pool, which it
// does not export.
func isClosedDB(err error) bool {
	return strings.Contains(err.Error(), "sql: database is closed")
}

// checkKey validates a string that is stored in a key column.
func checkKey(field, v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty %s", sdk.ErrInvalid, field)
	}
	if err := checkText(field, v); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(v); n > maxKeyChars {
		return fmt.Errorf("%w: %s is %d characters, the limit is %d", sdk.ErrInvalid, field, n, maxKeyChars)
	}
	return nil
}

// checkText validates a string stored in any text column: PostgreSQL
// refuses invalid UTF-8 and NUL bytes, so SQLite must refuse them too or
// the data could not be moved.
func checkText(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", sdk.ErrInvalid, field)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", sdk.ErrInvalid, field)
	}
	return nil
}

// checkAll returns the first error of errs.
func checkAll(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
