package sqlbackend

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/koi-im/koi/sdk"
)

// Store is koi's SQL backend. It serves every feature read-write and is
// safe for concurrent use.
type Store struct {
	db         *sql.DB
	d          dialect
	iterations int
	log        sdk.Logger
	// from and version are the schema versions Open found and left.
	from, version int
	// maxIdle is the pool's idle connection limit.
	maxIdle int
	// archiveWriters is AppendWriters.
	archiveWriters int
	// writeGate, on SQLite only, lets one write through at a time, in
	// the order they came. SQLite has one write lock, and the writers
	// waiting for it poll (busy_timeout) with sleeps that grow to 100 ms:
	// under contention one can lose every turn until its timeout ends in
	// SQLITE_BUSY, and each waits longer than the lock is held. Queued
	// here, none waits for SQLite at all.
	writeGate chan struct{}

	// stmts caches a prepared statement per query text ("?" form);
	// database/sql prepares it again on each connection that needs it.
	// wanted are queries a transaction found missing from stmts.
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
}

var (
	_ sdk.Backend           = (*Store)(nil)
	_ sdk.Pinger            = (*Store)(nil)
	_ sdk.Auth              = (*Store)(nil)
	_ sdk.AuthAdmin         = (*Store)(nil)
	_ sdk.Roster            = (*Store)(nil)
	_ sdk.RosterWriter      = (*Store)(nil)
	_ sdk.Offline           = (*Store)(nil)
	_ sdk.VCard             = (*Store)(nil)
	_ sdk.VCardWriter       = (*Store)(nil)
	_ sdk.Private           = (*Store)(nil)
	_ sdk.PrivateWriter     = (*Store)(nil)
	_ sdk.Blocklist         = (*Store)(nil)
	_ sdk.BlocklistWriter   = (*Store)(nil)
	_ sdk.Tokens            = (*Store)(nil)
	_ sdk.TokensWriter      = (*Store)(nil)
	_ sdk.MUC               = (*Store)(nil)
	_ sdk.MUCWriter         = (*Store)(nil)
	_ sdk.PubSub            = (*Store)(nil)
	_ sdk.PubSubWriter      = (*Store)(nil)
	_ sdk.AppendConcurrency = (*Store)(nil)
)

// Open connects to the database described by c and applies any pending
// schema migrations. log may be nil.
func Open(ctx context.Context, c Settings, log sdk.Logger) (*Store, error) {
	return open(ctx, c, log, schema())
}

// Migrate applies any pending schema migrations and closes the database
// again; it returns the schema version found and the one left.
func Migrate(ctx context.Context, c Settings, log sdk.Logger) (from, to int, err error) {
	s, err := open(ctx, c, log, schema())
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	return s.from, s.version, nil
}

// open is Open with the migration list as a parameter, so tests can make a
// migration fail.
func open(ctx context.Context, c Settings, log sdk.Logger, migs []migration) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := c.check()
	if err != nil {
		return nil, err
	}
	db, err := d.open(c, log)
	if err != nil {
		return nil, fmt.Errorf("%w: sql backend config: %w", sdk.ErrInvalid, err)
	}
	writers := c.ArchiveWriters
	if writers == 0 {
		writers = defaultArchiveWriters
		if _, sqlite := d.(sqliteDialect); sqlite {
			writers = 1
		}
		if c.MaxOpenConns > 0 {
			writers = min(writers, c.MaxOpenConns)
		}
	}
	maxIdle := c.MaxIdleConns
	if maxIdle == 0 {
		// The archive's writers take their connections again and again:
		// closing them between batches would cost a connection set-up each.
		maxIdle = max(defaultMaxIdleConns, writers)
	}
	db.SetMaxOpenConns(c.MaxOpenConns)
	db.SetMaxIdleConns(maxIdle)
	db.SetConnMaxLifetime(c.ConnMaxLifetime)
	s := &Store{db: db, d: d, iterations: c.SCRAMIterations, log: log, maxIdle: maxIdle, archiveWriters: writers,
		stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
	if _, sqlite := d.(sqliteDialect); sqlite {
		s.writeGate = make(chan struct{}, 1)
	}
	if s.iterations == 0 {
		s.iterations = sdk.DefaultSCRAMIterations
	}
	server, err := d.checkServer(ctx, db, c)
	for try := 1; err != nil && try < 5 && d.classify(err) == errTransient; try++ {
		// Several processes opening a new SQLite file at once race to
		// switch it to WAL; the loser is told "locked" without waiting.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try) * 50 * time.Millisecond):
		}
		server, err = d.checkServer(ctx, db, c)
	}
	if err != nil {
		db.Close()
		return nil, s.fail("open "+d.name()+" database", err)
	}
	log.Info("connected", "server", server)
	from, to, err := migrate(ctx, db, d, migs, log)
	if err != nil {
		db.Close()
		return nil, s.fail("schema", err)
	}
	s.from, s.version = from, to
	return s, nil
}

// SchemaVersion is the version of the schema, the newest migration
// applied.
func (s *Store) SchemaVersion() int { return s.version }

// defaultMaxIdleConns is database/sql's own default, which it does not
// export.
const defaultMaxIdleConns = 2

// Capabilities declares every feature read-write, with SCRAM and archive
// search.
func (s *Store) Capabilities() sdk.Capabilities { return capabilities() }

// capabilities is what every Store serves, whatever its config; Validate
// reports it without opening a database.
func capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		Auth:    sdk.AuthCapabilities{Access: sdk.AccessReadWrite, SCRAM: true},
		Roster:  sdk.AccessReadWrite,
		Offline: sdk.AccessReadWrite,
		VCard:   sdk.AccessReadWrite,
		Private: sdk.AccessReadWrite,
		// Full-text search is a substring scan of the owner's messages
		// (archive.go): no index, but no extra setup either.
		Archive:   sdk.ArchiveCapabilities{Access: sdk.AccessReadWrite, FullText: true, Retract: true},
		Blocklist: sdk.AccessReadWrite,
		Tokens:    sdk.AccessReadWrite,
		MUC:       sdk.AccessReadWrite,
		PubSub:    sdk.AccessReadWrite,
		// Both sides of a subscription in one transaction (rosterbatch.go).
		RosterBatch: true,
	}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.fail("ping", s.db.PingContext(ctx))
}

// Close closes the prepared statements and the connection pool.
func (s *Store) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	clear(s.stmts)
	s.mu.Unlock()
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
	return s.inTx(ctx, op, s.d.readTx(), fn)
}

// maxTxAttempts bounds how often a transaction the database aborted to
// break a deadlock is run again.
const maxTxAttempts = 4

func (s *Store) inTx(ctx context.Context, op string, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tryTx(ctx, opts, fn)
		if err == nil {
			// Only now: a failing call must not wait on more statements.
			s.prepareWanted(ctx)
			return nil
		}
		if attempt == maxTxAttempts || classify(s.d, err) != errRetry || ctx.Err() != nil {
			return s.fail(op, err)
		}
		s.log.Debug("transaction aborted by the database, running it again", "op", op, "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return s.fail(op, ctx.Err())
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		}
	}
}

func (s *Store) tryTx(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	if opts == nil || !opts.ReadOnly {
		leave, err := s.enterWrite(ctx)
		if err != nil {
			return err
		}
		defer leave()
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// stmt returns the prepared statement for query, written with "?"
// placeholders, in tx unless tx is nil.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	st, ok := s.stmts[query]
	if !ok && tx != nil {
		s.wanted[query] = true
	}
	s.mu.Unlock()
	switch {
	case ok && tx != nil:
		return tx.StmtContext(ctx, st), nil
	case ok:
		return st, nil
	case tx != nil:
		// Preparing on the pool now could wait for a free connection
		// while this transaction holds one; with every connection in
		// such a transaction nothing would move again. The transaction
		// prepares its own copy, and inTx prepares the pool's after it.
		return tx.PrepareContext(ctx, s.q(query))
	}
	return s.prepare(ctx, query)
}

// prepare prepares query on the pool and caches it. It is never called
// while holding a connection.
func (s *Store) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	st, err := s.db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.wanted, query)
	if prev, ok := s.stmts[query]; ok {
		st.Close()
		return prev, nil
	}
	s.stmts[query] = st
	return st, nil
}

// prepareWanted prepares on the pool the statements transactions met
// uncached. A failure is left for a later transaction to retry.
func (s *Store) prepareWanted(ctx context.Context) {
	s.mu.Lock()
	var queries []string
	for q := range s.wanted {
		queries = append(queries, q)
	}
	s.mu.Unlock()
	for _, q := range queries {
		if ctx.Err() != nil {
			return
		}
		if _, err := s.prepare(ctx, q); err != nil {
			s.log.Debug("preparing a statement failed", "error", err)
			return
		}
	}
}

// exec runs a prepared statement, in tx unless tx is nil.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := s.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	if tx == nil {
		leave, err := s.enterWrite(ctx)
		if err != nil {
			return nil, err
		}
		defer leave()
	}
	return st.ExecContext(ctx, args...)
}

// enterWrite waits for the write gate, where there is one (writeGate),
// and returns what leaves it.
func (s *Store) enterWrite(ctx context.Context) (leave func(), err error) {
	if s.writeGate == nil {
		return func() {}, nil
	}
	select {
	case s.writeGate <- struct{}{}:
		return func() { <-s.writeGate }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// query runs a prepared query, in tx unless tx is nil.
func (s *Store) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// scanOne runs a prepared query that returns at most one row and scans it
// into dest; no row is sql.ErrNoRows.
func (s *Store) scanOne(ctx context.Context, tx *sql.Tx, query string, args []any, dest ...any) error {
	st, err := s.stmt(ctx, tx, query)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

// insertID inserts a row and returns the id the database gave it.
func (s *Store) insertID(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	if s.d.returningID() {
		var id int64
		err := s.scanOne(ctx, tx, query+" RETURNING id", args, &id)
		return id, err
	}
	res, err := s.exec(ctx, tx, query, args...)
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
	}
	switch classify(s.d, err) {
	case errUnique:
		return fmt.Errorf("%s: %w: %w", op, sdk.ErrExists, err)
	case errConnLost:
		s.dropIdle()
		return fmt.Errorf("%s: %w: %w", op, sdk.ErrUnavailable, err)
	case errTransient, errRetry:
		return fmt.Errorf("%s: %w: %w", op, sdk.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// dropIdle closes the pool's idle connections. When one connection was
// lost the others mostly were too (a restart, a fail-over, an
// administrator's kill); reusing them would fail the next calls one by
// one, while new ones work as soon as the server does.
func (s *Store) dropIdle() {
	s.db.SetMaxIdleConns(0)
	s.db.SetMaxIdleConns(s.maxIdle)
}

// classify sorts err: first the failures every driver shares (a context
// ended, a connection lost or refused, the pool closed), then by d.
func classify(d dialect, err error) errClass {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, sql.ErrConnDone), isClosedDB(err):
		return errTransient
	case errors.Is(err, driver.ErrBadConn),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &ne) && !ne.Timeout():
		return errConnLost
	case errors.As(err, &ne):
		return errTransient
	}
	return d.classify(err)
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
