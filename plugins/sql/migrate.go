package sqlbackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/koi-im/koi/sdk"
)

// migrate brings the database up to the newest of migs and returns the
// schema version it found and the one it left. A migration that fails
// leaves the database as the previous one left it:
//
//   - Where DDL is transactional (SQLite, PostgreSQL) a migration's steps
//     and the row recording it run in one transaction.
//   - On MySQL every CREATE, ALTER or DROP commits by itself, so each step
//     carries its undo. Before a step starts, koi_schema_progress records
//     it; when a step fails, the steps before it are undone in reverse
//     order. The version row is written last, in one transaction with
//     the removal of the progress row. If the process dies half-way, the
//     progress row survives and the next start undoes the started steps
//     (tolerating "does not exist") before trying again.
//
// Migrations are serialised between processes by a database lock (SQLite:
// the write lock of the migration's transaction).
func migrate(ctx context.Context, db *sql.DB, d dialect, migs []migration, log sdk.Logger) (from, to int, err error) {
	last := 0
	for _, m := range migs {
		if m.version <= last {
			return 0, 0, fmt.Errorf("migration %d (%s) is out of order", m.version, m.name)
		}
		last = m.version
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	unlock, err := d.lockMigrations(ctx, conn)
	if err != nil {
		return 0, 0, err
	}
	defer unlock()

	bookkeeping := []tableDef{migrationsTableDef()}
	if !d.transactionalDDL() {
		bookkeeping = append(bookkeeping, progressTableDef())
	}
	for _, t := range bookkeeping {
		ddl, err := createTableSQL(d, t, true)
		if err != nil {
			return 0, 0, err
		}
		if _, err := conn.ExecContext(ctx, ddl); err != nil {
			return 0, 0, fmt.Errorf("create %s: %w", t.name, err)
		}
	}
	if !d.transactionalDDL() {
		if err := recoverInterrupted(ctx, conn, d, migs, log); err != nil {
			return 0, 0, err
		}
	}
	var newest sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MAX(version) FROM "+migrationsTable).Scan(&newest); err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	from = int(newest.Int64)
	if from > last {
		return from, from, fmt.Errorf("database schema version %d is newer than this koi-backend-sql knows (%d); upgrade the plugin", from, last)
	}
	for _, m := range migs {
		if m.version <= from {
			continue
		}
		steps, err := m.up(d)
		if err == nil {
			err = checkSteps(d, steps)
		}
		if err != nil {
			return from, from, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		var applied bool
		if d.transactionalDDL() {
			applied, err = applyInTx(ctx, conn, d, m, steps)
		} else {
			err = applyStepwise(ctx, conn, d, m, steps)
			applied = err == nil
		}
		if err != nil {
			return from, from, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if applied {
			log.Info("applied schema migration", "version", m.version, "name", m.name)
		}
	}
	return from, last, nil
}

// checkSteps refuses a migration that could not be undone on d.
func checkSteps(d dialect, steps []step) error {
	for i, s := range steps {
		if s.do == "" {
			return fmt.Errorf("step %d is empty", i+1)
		}
		if s.undo == "" && !d.transactionalDDL() {
			return fmt.Errorf("step %d has no undo, which %s needs because its DDL commits at once", i+1, d.name())
		}
	}
	return nil
}

// applyInTx runs m's steps and records it in one transaction, unless
// another process applied it since migrate looked; it reports whether it
// did.
func applyInTx(ctx context.Context, conn *sql.Conn, d dialect, m migration, steps []step) (applied bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var n int
	if err := tx.QueryRowContext(ctx, d.rebind("SELECT COUNT(*) FROM "+migrationsTable+" WHERE version = ?"), m.version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, tx.Rollback()
	}
	for _, s := range steps {
		if _, err := tx.ExecContext(ctx, s.do); err != nil {
			return false, fmt.Errorf("%w (in %s)", err, s.do)
		}
	}
	if err := recordVersion(ctx, tx, d, m); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

func recordVersion(ctx context.Context, tx *sql.Tx, d dialect, m migration) error {
	_, err := tx.ExecContext(ctx, d.rebind("INSERT INTO "+migrationsTable+" (version, name, applied_at) VALUES (?, ?, ?)"),
		m.version, m.name, time.Now().Unix())
	return err
}

// applyStepwise runs m's steps one by one, undoing the finished ones if a
// step fails. The caller holds the migration lock, so m is still pending.
func applyStepwise(ctx context.Context, conn *sql.Conn, d dialect, m migration, steps []step) error {
	setProgress := func(started int) error {
		_, err := conn.ExecContext(ctx, d.rebind(d.upsert(progressTable, []string{"version"}, []string{"started"})), m.version, started)
		return err
	}
	for i, s := range steps {
		if err := setProgress(i + 1); err != nil {
			return fmt.Errorf("record progress: %w", err)
		}
		if _, err := conn.ExecContext(ctx, s.do); err != nil {
			err = fmt.Errorf("%w (in %s)", err, s.do)
			if c := classify(d, err); c == errTransient || c == errConnLost {
				// The connection failed: whether step i+1 ran is
				// unknown, so it is undone too, tolerantly.
				return errors.Join(err, undoSteps(ctx, conn, d, m, steps[:i+1], true))
			}
			// The database refused step i+1, so it did nothing; its undo
			// might remove what made it fail (a table of the same name).
			if perr := setProgress(i); perr != nil {
				return errors.Join(err, perr)
			}
			return errors.Join(err, undoSteps(ctx, conn, d, m, steps[:i], false))
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err == nil {
		err = recordVersion(ctx, tx, d, m)
		if err == nil {
			_, err = tx.ExecContext(ctx, d.rebind("DELETE FROM "+progressTable+" WHERE version = ?"), m.version)
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	if err != nil {
		return errors.Join(fmt.Errorf("record version: %w", err), undoSteps(ctx, conn, d, m, steps, false))
	}
	return nil
}

// undoSteps reverses done, newest first, then forgets m's progress. After a
// crash (lenient) a step may have run only in part, so "does not exist"
// counts as undone. If an undo fails the progress row stays, and the next
// start tries again.
func undoSteps(ctx context.Context, conn *sql.Conn, d dialect, m migration, done []step, lenient bool) error {
	// The undo must run even when the caller's context is what failed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for i := len(done) - 1; i >= 0; i-- {
		if _, err := conn.ExecContext(ctx, done[i].undo); err != nil && !(lenient && classify(d, err) == errMissing) {
			return fmt.Errorf("undo of step %d failed, the database keeps part of migration %d until the next start: %w (in %s)",
				i+1, m.version, err, done[i].undo)
		}
	}
	if _, err := conn.ExecContext(ctx, d.rebind("DELETE FROM "+progressTable+" WHERE version = ?"), m.version); err != nil {
		return fmt.Errorf("forget progress of migration %d: %w", m.version, err)
	}
	return nil
}

// recoverInterrupted undoes the started steps of migrations that a crash
// interrupted.
func recoverInterrupted(ctx context.Context, conn *sql.Conn, d dialect, migs []migration, log sdk.Logger) error {
	type progress struct{ version, started int }
	rows, err := conn.QueryContext(ctx, "SELECT version, started FROM "+progressTable+" ORDER BY version DESC")
	if err != nil {
		return fmt.Errorf("read %s: %w", progressTable, err)
	}
	var pending []progress
	for rows.Next() {
		var p progress
		if err := rows.Scan(&p.version, &p.started); err != nil {
			rows.Close()
			return err
		}
		pending = append(pending, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range pending {
		var m *migration
		for i := range migs {
			if migs[i].version == p.version {
				m = &migs[i]
			}
		}
		if m == nil {
			return fmt.Errorf("migration %d was interrupted, and this koi-backend-sql does not know it; finish it with the plugin that started it", p.version)
		}
		steps, err := m.up(d)
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		n := min(p.started, len(steps))
		log.Warn("undoing an interrupted schema migration", "version", m.version, "name", m.name, "steps", n)
		if err := undoSteps(ctx, conn, d, *m, steps[:n], true); err != nil {
			return err
		}
	}
	return nil
}
