package sqlbackend

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// tables lists koi's tables in set's database (schema), read through admin
// so the check does not go through the code under test.
func tables(t *testing.T, admin *sql.DB, set Settings) []string {
	t.Helper()
	var q string
	switch set.Driver {
	case "sqlite":
		q = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'koi_%' ORDER BY name"
	case "postgres":
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'koi_%' ORDER BY table_name"
	default:
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'koi_%' ORDER BY table_name"
	}
	return queryStrings(t, admin, q)
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func versions(t *testing.T, admin *sql.DB) []int {
	t.Helper()
	var vs []int
	for _, v := range queryStrings(t, admin, "SELECT version FROM koi_schema_migrations ORDER BY version") {
		var n int
		fmt.Sscan(v, &n)
		vs = append(vs, n)
	}
	return vs
}

// withBookkeeping adds the tables migrate itself keeps on set's database.
func withBookkeeping(set Settings, names ...string) []string {
	names = append(names, migrationsTable)
	if set.Driver == "mysql" {
		names = append(names, progressTable)
	}
	slices.Sort(names)
	return names
}

func countRows(t *testing.T, admin *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := admin.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestMigrationsIdempotent(t *testing.T) {
	forEachSettings(t, func(t *testing.T, set Settings) {
		admin := adminDB(t, set)
		s := openOn(t, set)
		if s.SchemaVersion() != len(schema()) {
			t.Errorf("SchemaVersion = %d, want %d", s.SchemaVersion(), len(schema()))
		}
		if err := s.SetVCard(t.Context(), "ann@example.org", "<vCard xmlns='vcard-temp'/>"); err != nil {
			t.Fatal(err)
		}
		s.Close()
		want := tables(t, admin, set)
		for range 2 {
			from, to, err := Migrate(t.Context(), set, nil)
			if err != nil || from != to || to != len(schema()) {
				t.Errorf("Migrate again = %d, %d, %v; want %d unchanged", from, to, err, len(schema()))
			}
			s := openOn(t, set)
			if _, err := s.GetVCard(t.Context(), "ann@example.org"); err != nil {
				t.Errorf("data lost on reopen: %v", err)
			}
			s.Close()
		}
		if got := tables(t, admin, set); !slices.Equal(got, want) {
			t.Errorf("tables after reopen %v, want %v", got, want)
		}
		if got := versions(t, admin); len(got) != len(schema()) {
			t.Errorf("recorded versions %v, want one per migration (%d)", got, len(schema()))
		}
		wantTables := withBookkeeping(set, "koi_archive", "koi_archive_prefs", "koi_archive_prefs_jids", "koi_blocklist", "koi_fast_tokens",
			"koi_offline_messages", "koi_private_storage", "koi_pubsub_affiliations", "koi_pubsub_items",
			"koi_pubsub_nodes", "koi_pubsub_subscriptions", "koi_roster_groups", "koi_roster_items",
			"koi_roster_pending", "koi_roster_versions", "koi_scram_credentials", "koi_users", "koi_vcards")
		if !slices.Equal(want, wantTables) {
			t.Errorf("tables %v, want %v", want, wantTables)
		}
	})
}

func stmts(s ...step) func(dialect) ([]step, error) {
	return func(dialect) ([]step, error) { return s, nil }
}

// Test migrations: one creates a table; two creates a table, adds an index
// and writes a row; twoBad then fails on a table that exists.
func migOne() migration {
	return migration{version: 1, name: "one", up: stmts(
		step{"CREATE TABLE koi_one (x INTEGER NOT NULL)", "DROP TABLE IF EXISTS koi_one"})}
}

func migTwoSteps() []step {
	return []step{
		{"CREATE TABLE koi_two (x INTEGER NOT NULL)", "DROP TABLE IF EXISTS koi_two"},
		{"CREATE INDEX koi_two_x ON koi_two (x)", "DROP INDEX koi_two_x ON koi_two"},
		{"INSERT INTO koi_one (x) VALUES (1)", "DELETE FROM koi_one WHERE x = 1"},
	}
}

func migTwoBad() migration {
	return migration{version: 2, name: "two", up: stmts(append(migTwoSteps(),
		step{"CREATE TABLE koi_one (y INTEGER NOT NULL)", "DROP TABLE IF EXISTS koi_one"})...)}
}

// dialectSteps adapts the DROP INDEX syntax of test steps to set's database.
func dialectSteps(set Settings, steps []step) []step {
	out := slices.Clone(steps)
	for i, s := range out {
		if s.undo == "DROP INDEX koi_two_x ON koi_two" && set.Driver != "mysql" {
			out[i].undo = "DROP INDEX koi_two_x"
		}
	}
	return out
}

func fixMig(set Settings, m migration) migration {
	steps, _ := m.up(nil)
	m.up = stmts(dialectSteps(set, steps)...)
	return m
}

func TestMigrationFailureRollsBack(t *testing.T) {
	forEachSettings(t, func(t *testing.T, set Settings) {
		admin := adminDB(t, set)
		one, bad := fixMig(set, migOne()), fixMig(set, migTwoBad())
		_, err := open(t.Context(), set, nil, []migration{one, bad})
		wantErrText(t, "open with a failing migration", err, "migration 2", "two")

		if got, want := tables(t, admin, set), withBookkeeping(set, "koi_one"); !slices.Equal(got, want) {
			t.Errorf("tables after failed migration %v, want %v", got, want)
		}
		if got := versions(t, admin); !slices.Equal(got, []int{1}) {
			t.Errorf("versions after failed migration %v, want [1]", got)
		}
		if n := countRows(t, admin, "koi_one"); n != 0 {
			t.Errorf("koi_one has %d rows after the failed migration, want 0", n)
		}
		if set.Driver == "mysql" {
			if n := countRows(t, admin, progressTable); n != 0 {
				t.Errorf("%s has %d rows after an undone migration", progressTable, n)
			}
		}

		fixed := fixMig(set, migration{version: 2, name: "two", up: stmts(migTwoSteps()...)})
		s, err := open(t.Context(), set, nil, []migration{one, fixed})
		if err != nil {
			t.Fatalf("open after fixing the migration: %v", err)
		}
		s.Close()
		if got := versions(t, admin); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("versions %v, want [1 2]", got)
		}
		if n := countRows(t, admin, "koi_one"); n != 1 {
			t.Errorf("koi_one has %d rows after the migration, want 1", n)
		}
	})
}

// A real migration that fails half-way (a table it creates is already
// there) must leave none of its other tables behind, and the one that was
// there untouched.
func TestInitialMigrationRollsBack(t *testing.T) {
	forEachSettings(t, func(t *testing.T, set Settings) {
		admin := adminDB(t, set)
		mustExec(t, admin, "CREATE TABLE koi_vcards (something_else TEXT)")
		mustExec(t, admin, "INSERT INTO koi_vcards (something_else) VALUES ('kept')")
		if s, err := Open(t.Context(), set, nil); err == nil {
			s.Close()
			t.Fatal("Open succeeded over a conflicting table")
		}
		if got, want := tables(t, admin, set), withBookkeeping(set, "koi_vcards"); !slices.Equal(got, want) {
			t.Errorf("tables %v, want only %v", got, want)
		}
		if got := versions(t, admin); len(got) != 0 {
			t.Errorf("versions %v, want none", got)
		}
		if got := queryStrings(t, admin, "SELECT something_else FROM koi_vcards"); !slices.Equal(got, []string{"kept"}) {
			t.Errorf("the conflicting table holds %q, want its own row", got)
		}
	})
}

// On MySQL a migration interrupted by a crash (steps started, no version
// row) is undone at the next start and applied again; an interrupted
// migration the plugin does not know stops it.
func TestMigrationInterrupted(t *testing.T) {
	set := testSettings(t, "mysql")
	admin := adminDB(t, set)
	one := fixMig(set, migOne())
	two := fixMig(set, migration{version: 2, name: "two", up: stmts(migTwoSteps()...)})
	s, err := open(t.Context(), set, nil, []migration{one})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The crash came while step 2 (the index) ran: step 1's table exists,
	// the index does not.
	mustExec(t, admin, "CREATE TABLE koi_two (x INTEGER NOT NULL)")
	mustExec(t, admin, "INSERT INTO "+progressTable+" (version, started) VALUES (2, 2)")

	s, err = open(t.Context(), set, hclog.NewNullLogger(), []migration{one, two})
	if err != nil {
		t.Fatalf("open after an interrupted migration: %v", err)
	}
	s.Close()
	if got := versions(t, admin); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("versions %v, want [1 2]", got)
	}
	if n := countRows(t, admin, progressTable); n != 0 {
		t.Errorf("%d progress rows left", n)
	}
	if got := queryStrings(t, admin, "SELECT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'koi_two'"); !slices.Equal(got, []string{"koi_two_x"}) {
		t.Errorf("indexes of koi_two %v, want [koi_two_x]", got)
	}

	mustExec(t, admin, "INSERT INTO "+progressTable+" (version, started) VALUES (7, 1)")
	_, err = open(t.Context(), set, nil, []migration{one, two})
	wantErrText(t, "open with an unknown interrupted migration", err, "migration 7", "interrupted")
}

// MySQL cannot roll DDL back, so a migration step without an undo is
// refused before anything runs.
func TestMigrationNeedsUndo(t *testing.T) {
	set := testSettings(t, "mysql")
	admin := adminDB(t, set)
	m := migration{version: 1, name: "noundo", up: stmts(
		step{"CREATE TABLE koi_a (x INTEGER NOT NULL)", "DROP TABLE IF EXISTS koi_a"},
		step{do: "CREATE TABLE koi_b (x INTEGER NOT NULL)"})}
	_, err := open(t.Context(), set, nil, []migration{m})
	wantErrText(t, "open with a step lacking undo", err, "step 2", "no undo")
	if got, want := tables(t, admin, set), withBookkeeping(set); !slices.Equal(got, want) {
		t.Errorf("tables %v, want %v", got, want)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	forEachSettings(t, func(t *testing.T, set Settings) {
		openOn(t, set).Close()
		mustExec(t, adminDB(t, set), "INSERT INTO koi_schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)")
		_, err := Open(t.Context(), set, nil)
		wantErrText(t, "Open of a newer schema", err, "99", "newer")
	})
}

// Processes starting at once on an empty database migrate it once between
// them.
func TestConcurrentMigrations(t *testing.T) {
	for _, set := range dbs(t) {
		t.Run(set.Driver, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Go(func() {
					s, err := Open(t.Context(), set, nil)
					if err != nil {
						errs <- err
						return
					}
					s.Close()
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := versions(t, adminDB(t, set)); len(got) != len(schema()) {
				t.Errorf("versions %v, want %d", got, len(schema()))
			}
		})
	}
}

func TestMigrationsOutOfOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "koi.db")
	m := func(v int) migration { return migration{version: v, name: "m", up: stmts()} }
	_, err := open(t.Context(), Settings{Driver: "sqlite", DSN: path}, nil, []migration{m(2), m(1)})
	wantErrText(t, "open with unordered migrations", err, "out of order")
}

func TestSchemaIdentifiers(t *testing.T) {
	for _, d := range []dialect{sqliteDialect{}, postgresDialect{}, mysqlDialect{}} {
		if _, err := createTableSQL(d, tableDef{name: "koi_" + string(make([]byte, 70))}, false); err == nil {
			t.Errorf("%s: createTableSQL accepted a 74-byte name", d.name())
		}
		if _, err := createIndexSQL(d, "Koi-Index", "koi_users", "host"); err == nil {
			t.Errorf("%s: createIndexSQL accepted a name with upper case and a dash", d.name())
		}
		if _, err := createTableSQL(d, tableDef{name: "koi_x", cols: []columnDef{{name: "a", typ: colType(99)}}}, false); err == nil {
			t.Errorf("%s: createTableSQL accepted an unknown column type", d.name())
		}
		// Every real migration can be undone on every database.
		for _, m := range schema() {
			steps, err := m.up(d)
			if err == nil {
				err = checkSteps(mysqlDialect{}, steps)
			}
			if err != nil {
				t.Errorf("%s: migration %d: %v", d.name(), m.version, err)
			}
		}
	}
}
