package sqlbackend

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

// The servers the tests use unless KOI_TEST_POSTGRES_DSN or
// KOI_TEST_MYSQL_DSN name others. Each test gets its own PostgreSQL schema
// or MariaDB database, koi_test_<random>, dropped when it ends.
const (
	defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/test"
)

// testDrivers are the databases every store test runs on.
func testDrivers() []string { return []string{"sqlite", "postgres", "mysql"} }

// forEachDB runs f as one subtest per database, each on a fresh store.
func forEachDB(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Helper()
	for _, driver := range testDrivers() {
		t.Run(driver, func(t *testing.T) {
			f(t, openOn(t, testSettings(t, driver)))
		})
	}
}

// forEachSettings is forEachDB for tests that open stores themselves.
func forEachSettings(t *testing.T, f func(t *testing.T, set Settings)) {
	t.Helper()
	for _, driver := range testDrivers() {
		t.Run(driver, func(t *testing.T) { f(t, testSettings(t, driver)) })
	}
}

// dbs returns settings for a fresh, empty database on every server that
// answers: SQLite always, PostgreSQL and MySQL when reachable. An
// unreachable server is skipped with a line saying what to start, or fails
// t when CI=true.
func dbs(t *testing.T) []Settings {
	t.Helper()
	var out []Settings
	for _, driver := range testDrivers() {
		set, skip := tryTestSettings(t, driver)
		if skip != "" {
			t.Log(skip)
			continue
		}
		out = append(out, set)
	}
	return out
}

// testSettings returns settings for a fresh, empty database of driver,
// removed when t ends. An unreachable server skips t, or fails it when
// CI=true.
func testSettings(t testing.TB, driver string) Settings {
	t.Helper()
	set, skip := tryTestSettings(t, driver)
	if skip != "" {
		t.Skip(skip)
	}
	return set
}

// tryTestSettings is testSettings that returns why the server cannot be
// used instead of skipping.
func tryTestSettings(t testing.TB, driver string) (set Settings, skip string) {
	t.Helper()
	name := "koi_test_" + randomHex(6)
	switch driver {
	case "sqlite":
		return Settings{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "data", "koi.db")}, ""
	case "postgres":
		base := envOr("KOI_TEST_POSTGRES_DSN", defaultPostgresDSN)
		admin, skip := reachServer(t, Settings{Driver: "postgres", DSN: base})
		if skip != "" {
			return Settings{}, skip
		}
		mustExec(t, admin, "CREATE SCHEMA "+name)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
				t.Errorf("dropping schema %s: %v", name, err)
			}
			admin.Close()
		})
		// The application name marks the test's own connections, so that
		// a test can kill them without touching anyone else's.
		return Settings{Driver: "postgres", DSN: withPGParam(t, base, "application_name", name), Schema: name}, ""
	case "mysql":
		base := envOr("KOI_TEST_MYSQL_DSN", defaultMySQLDSN)
		admin, skip := reachServer(t, Settings{Driver: "mysql", DSN: base})
		if skip != "" {
			return Settings{}, skip
		}
		// latin1 as the database default proves that koi's tables do not
		// depend on the database's defaults.
		mustExec(t, admin, "CREATE DATABASE "+name+" CHARACTER SET latin1 COLLATE latin1_swedish_ci")
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := admin.ExecContext(ctx, "DROP DATABASE "+name); err != nil {
				t.Errorf("dropping database %s: %v", name, err)
			}
			admin.Close()
		})
		cfg, err := mysql.ParseDSN(base)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DBName = name
		return Settings{Driver: "mysql", DSN: cfg.FormatDSN()}, ""
	}
	t.Fatalf("unknown test driver %q", driver)
	return Settings{}, ""
}

// reachServer connects to the server of set. When it does not answer it
// returns a line saying what to start, or fails t when CI=true.
func reachServer(t testing.TB, set Settings) (*sql.DB, string) {
	t.Helper()
	d, err := set.check()
	if err != nil {
		t.Fatal(err)
	}
	db, err := d.open(set, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("%s test dsn: %v", set.Driver, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err = db.PingContext(ctx); err == nil {
		return db, ""
	}
	db.Close()
	var msg string
	switch set.Driver {
	case "postgres":
		msg = fmt.Sprintf("PostgreSQL not reachable at %s (%v): start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start` "+
			"(trust auth, database test), or run scripts/db/postgres.sh and set KOI_TEST_POSTGRES_DSN; see README, Databases", serverAddr(set), err)
	default:
		msg = fmt.Sprintf("MariaDB not reachable at %s (%v): start it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` "+
			"(root without password, database test), or run scripts/db/mariadb.sh and set KOI_TEST_MYSQL_DSN; see README, Databases", serverAddr(set), err)
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	return nil, msg
}

// serverAddr is host:port of set's dsn, for messages.
func serverAddr(set Settings) string {
	switch set.Driver {
	case "postgres":
		if c, err := pgx.ParseConfig(set.DSN); err == nil {
			return net.JoinHostPort(c.Host, fmt.Sprint(c.Port))
		}
	case "mysql", "mariadb":
		if c, err := mysql.ParseDSN(set.DSN); err == nil {
			return c.Addr
		}
	}
	return "?"
}

// withPGParam adds key=value to a PostgreSQL dsn in either form.
func withPGParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func mustExec(t testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// openOn opens a Store on set, closed when t ends.
func openOn(t testing.TB, set Settings) *Store {
	t.Helper()
	s, err := Open(t.Context(), set, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("Open %s: %v", set.Driver, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// adminDB is a second connection pool on set's database (and schema), for
// setting up and checking what the store under test must not see.
func adminDB(t testing.TB, set Settings) *sql.DB {
	t.Helper()
	d, err := set.check()
	if err != nil {
		t.Fatal(err)
	}
	if set.Driver == "postgres" {
		set.DSN = withPGParam(t, set.DSN, "application_name", "koi_test_admin")
	}
	db, err := d.open(set, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openTest opens a Store on a fresh SQLite file, closed when t ends.
func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	set := testSettings(t, "sqlite")
	return openOn(t, set), set.DSN
}

// wantErr fails t unless err wraps want.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

// wantErrText fails t unless err is non-nil and mentions every part.
func wantErrText(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one mentioning %q", what, parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not mention %q", what, err, p)
		}
	}
}
