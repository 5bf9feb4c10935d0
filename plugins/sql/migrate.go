package sqlbackend

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// migrate brings the database up to the newest of migs. Each migration runs
// in its own transaction together with the row recording it, so a failing
// one leaves the database as the previous one left it. (MySQL commits DDL
// implicitly; its dialect will need statements that are safe to re-run.)
func migrate(ctx context.Context, db *sql.DB, d dialect, migs []migration, log hclog.Logger) error {
	last := 0
	for _, m := range migs {
		if m.version <= last {
			return fmt.Errorf("migration %d (%s) is out of order", m.version, m.name)
		}
		last = m.version
	}
	ddl, err := createTableSQL(d, migrationsTableDef(), true)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("create %s: %w", migrationsTable, err)
	}
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MAX(version) FROM "+migrationsTable).Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if newest.Valid && int(newest.Int64) > last {
		return fmt.Errorf("database schema version %d is newer than this koi-backend-sql knows (%d); upgrade the plugin", newest.Int64, last)
	}
	for _, m := range migs {
		if newest.Valid && m.version <= int(newest.Int64) {
			continue
		}
		applied, err := applyMigration(ctx, db, d, m)
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if applied {
			log.Info("applied schema migration", "version", m.version, "name", m.name)
		}
	}
	return nil
}

// applyMigration runs m unless another process applied it since migrate
// looked; it reports whether it did.
func applyMigration(ctx context.Context, db *sql.DB, d dialect, m migration) (applied bool, err error) {
	stmts, err := m.up(d)
	if err != nil {
		return false, err
	}
	tx, err := db.BeginTx(ctx, nil)
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
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return false, fmt.Errorf("%w (in %s)", err, s)
		}
	}
	if _, err := tx.ExecContext(ctx, d.rebind("INSERT INTO "+migrationsTable+" (version, name, applied_at) VALUES (?, ?, ?)"),
		m.version, m.name, time.Now().Unix()); err != nil {
		return false, err
	}
	return true, tx.Commit()
}
