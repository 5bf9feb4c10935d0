package sqlbackend

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/koi-im/koi/sdk"
)

// mysqlDialect drives MySQL (5.7.7 and newer) and MariaDB (10.3 and newer)
// with go-sql-driver/mysql.
//
// Keys are VARBINARY, compared and sorted byte by byte. The utf8mb4_bin
// collation would fold nothing either, but it is a PAD SPACE collation on
// MariaDB and MySQL 5.7, where 'ann' = 'ann ' holds, and the NO PAD binary
// collations are named differently on each (utf8mb4_nopad_bin,
// utf8mb4_0900_bin). Text columns are utf8mb4 with utf8mb4_bin.
type mysqlDialect struct{}

func (mysqlDialect) name() string { return "mysql" }

// open takes the driver's dsn (user:password@tcp(host:3306)/dbname?params).
// koi sets the connection's character set to utf8mb4, strict SQL mode
// unless the dsn sets sql_mode, and a dial timeout unless it sets one.
func (mysqlDialect) open(s Settings, log sdk.Logger) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(s.DSN)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w (want user:password@tcp(host:3306)/dbname)", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("dsn: no database named; put it after the slash: user@tcp(host:3306)/koi")
	}
	if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_bin")); err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["sql_mode"]; !ok {
		cfg.Params["sql_mode"] = "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultConnectTimeout
	}
	cfg.Logger = mysqlLogger{log}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	return sql.OpenDB(conn), nil
}

// mysqlLogger sends the driver's complaints (a connection found dead, say)
// to the plugin's log instead of its own stderr logger.
type mysqlLogger struct{ log sdk.Logger }

func (l mysqlLogger) Print(v ...any) { l.log.Warn("mysql driver: " + fmt.Sprint(v...)) }

func (mysqlDialect) checkServer(ctx context.Context, db *sql.DB, _ Settings) (string, error) {
	var version, database string
	if err := db.QueryRowContext(ctx, "SELECT VERSION(), DATABASE()").Scan(&version, &database); err != nil {
		return "", err
	}
	server := "MySQL"
	if strings.Contains(strings.ToLower(version), "mariadb") {
		server = "MariaDB"
	}
	return fmt.Sprintf("%s %s, database %s", server, version, database), nil
}

// rebind is the identity: MySQL understands "?".
func (mysqlDialect) rebind(query string) string { return query }

func (mysqlDialect) maxIdentLen() int { return 64 }

func (mysqlDialect) columnType(t colType, size int) (string, error) {
	switch t {
	case colKey:
		// size characters of up to 4 bytes each; see the type comment.
		return fmt.Sprintf("VARBINARY(%d)", 4*size), nil
	case colText:
		return "LONGTEXT", nil
	case colBlob:
		return "BLOB", nil
	case colInt:
		return "INT", nil
	case colBigInt:
		return "BIGINT", nil
	case colAutoID:
		return "BIGINT AUTO_INCREMENT PRIMARY KEY", nil
	}
	return "", fmt.Errorf("unknown column type %d", t)
}

// tableOptions: DYNAMIC rows allow index keys of 3072 bytes, which the
// widest key needs (see maxKeyChars).
func (mysqlDialect) tableOptions() string {
	return " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"
}

func (mysqlDialect) createIndex(name, table string, cols []string) string {
	return fmt.Sprintf("CREATE INDEX %s ON %s (%s)", name, table, strings.Join(cols, ", "))
}

func (mysqlDialect) dropIndex(name, table string) string {
	return fmt.Sprintf("DROP INDEX %s ON %s", name, table)
}

// upsert uses VALUES(col), which MySQL 8 deprecates in favour of a row
// alias that MariaDB does not have.
func (mysqlDialect) upsert(table string, keys, cols []string) string {
	all := append(append([]string(nil), keys...), cols...)
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON DUPLICATE KEY UPDATE ",
		table, strings.Join(all, ", "), placeholders(len(all)))
	if len(cols) == 0 {
		return q + keys[0] + " = " + keys[0]
	}
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = VALUES(" + c + ")"
	}
	return q + strings.Join(set, ", ")
}

// insertNew assigns a key to itself on a duplicate: unlike INSERT IGNORE,
// it turns no other error into a warning.
func (mysqlDialect) insertNew(table string, keys, cols []string) string {
	all := append(append([]string(nil), keys...), cols...)
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s = %s",
		table, strings.Join(all, ", "), placeholders(len(all)), keys[0], keys[0])
}

func (mysqlDialect) bumpCounter(table, key, col string) string {
	return fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (?, 1) ON DUPLICATE KEY UPDATE %[3]s = %[3]s + 1", table, key, col)
}

func (mysqlDialect) returningID() bool { return false }

// lockRows: InnoDB locks the rows (and the gaps of the owner's index
// range) until commit; a second Pop waits and then reads what is left.
func (mysqlDialect) lockRows() string { return " FOR UPDATE" }

func (mysqlDialect) readTx() *sql.TxOptions {
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

func (mysqlDialect) transactionalDDL() bool { return false }

// mysqlMigrationLock names a server-wide lock per database (lock names are
// limited to 64 characters).
const mysqlMigrationLock = "LEFT(CONCAT('" + migrationsTable + ".', DATABASE()), 64)"

// migrationLockWait is how long a process waits for another one's
// migrations before giving up.
const migrationLockWait = 60

func (mysqlDialect) lockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT GET_LOCK(%s, %d)", mysqlMigrationLock, migrationLockWait)).Scan(&got); err != nil {
		return nil, fmt.Errorf("lock for migrations: %w", err)
	}
	if got.Int64 != 1 {
		return nil, fmt.Errorf("lock for migrations: another process has held it for %ds", migrationLockWait)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(ctx, "SELECT RELEASE_LOCK("+mysqlMigrationLock+")"); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}, nil
}

func (mysqlDialect) classify(err error) errClass {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1062, 1586: // duplicate entry
			return errUnique
		case 1213: // deadlock: InnoDB rolled the transaction back
			return errRetry
		case 1051, 1091, 1146: // unknown table, cannot drop (absent), no such table
			return errMissing
		case 1053, // server shutdown in progress
			1152, 1184, // connection aborted
			1927,       // MariaDB: connection killed
			2006, 2013: // server gone away, lost connection
			return errConnLost
		case 1040, // too many connections
			1159, 1161, // network read/write timeout
			1205,       // lock wait timeout
			1290, 1836, // read-only server (fail-over in progress)
			1317, // query interrupted
			1969, // MariaDB: max_statement_time exceeded
			3024: // MySQL: max_execution_time exceeded
			return errTransient
		}
		return errOther
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, mysql.ErrPktSync) || errors.Is(err, mysql.ErrPktSyncMul) {
		return errConnLost
	}
	return errOther
}
