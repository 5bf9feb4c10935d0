package sqlbackend

import (
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
)

// tables lists the tables of the SQLite file at path, read with a separate
// connection so the check does not go through the code under test.
func tables(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'koi_%' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return names
}

func versions(t *testing.T, path string) []int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT version FROM koi_schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestMigrationsIdempotent(t *testing.T) {
	s, path := openTest(t)
	if err := s.SetVCard(t.Context(), "ann@example.org", "<vCard xmlns='vcard-temp'/>"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	want := tables(t, path)
	for range 2 {
		s, err := Open(t.Context(), Settings{Driver: "sqlite", DSN: path}, nil)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if _, err := s.GetVCard(t.Context(), "ann@example.org"); err != nil {
			t.Errorf("data lost on reopen: %v", err)
		}
		s.Close()
	}
	if got := tables(t, path); !slices.Equal(got, want) {
		t.Errorf("tables after reopen %v, want %v", got, want)
	}
	if got := versions(t, path); len(got) != len(schema()) {
		t.Errorf("recorded versions %v, want one per migration (%d)", got, len(schema()))
	}
	wantTables := []string{"koi_offline_messages", "koi_private_storage", "koi_roster_groups", "koi_roster_items",
		"koi_roster_pending", "koi_roster_versions", "koi_schema_migrations", "koi_scram_credentials", "koi_users", "koi_vcards"}
	if !slices.Equal(want, wantTables) {
		t.Errorf("tables %v, want %v", want, wantTables)
	}
}

func stmts(s ...string) func(dialect) ([]string, error) {
	return func(dialect) ([]string, error) { return s, nil }
}

func TestMigrationFailureRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "koi.db")
	set := Settings{Driver: "sqlite", DSN: path}
	good := migration{version: 1, name: "one", up: stmts("CREATE TABLE koi_one (x INTEGER NOT NULL)")}
	bad := migration{version: 2, name: "two", up: stmts(
		"CREATE TABLE koi_two (x INTEGER NOT NULL)",
		"INSERT INTO koi_one (x) VALUES (1)",
		"CREATE TABLE koi_one (y INTEGER NOT NULL)", // already exists: fails
	)}
	_, err := open(t.Context(), set, nil, []migration{good, bad})
	wantErrText(t, "open with a failing migration", err, "migration 2", "two")

	if got, want := tables(t, path), []string{"koi_one", "koi_schema_migrations"}; !slices.Equal(got, want) {
		t.Errorf("tables after failed migration %v, want %v", got, want)
	}
	if got := versions(t, path); !slices.Equal(got, []int{1}) {
		t.Errorf("versions after failed migration %v, want [1]", got)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM koi_one").Scan(&n); err != nil || n != 0 {
		t.Errorf("koi_one rows after rollback: %d, %v; want 0", n, err)
	}
	db.Close()

	fixed := migration{version: 2, name: "two", up: stmts("CREATE TABLE koi_two (x INTEGER NOT NULL)")}
	s, err := open(t.Context(), set, nil, []migration{good, fixed})
	if err != nil {
		t.Fatalf("open after fixing the migration: %v", err)
	}
	s.Close()
	if got := versions(t, path); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("versions %v, want [1 2]", got)
	}
}

// A real migration that fails half-way (a table it creates is already
// there) must leave none of its other tables behind.
func TestInitialMigrationRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "koi.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE koi_vcards (something_else TEXT)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(t.Context(), Settings{Driver: "sqlite", DSN: path}, nil); err == nil {
		t.Fatal("Open succeeded over a conflicting table")
	}
	if got, want := tables(t, path), []string{"koi_schema_migrations", "koi_vcards"}; !slices.Equal(got, want) {
		t.Errorf("tables %v, want only %v", got, want)
	}
	if got := versions(t, path); len(got) != 0 {
		t.Errorf("versions %v, want none", got)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, path := openTest(t)
	if _, err := s.db.ExecContext(t.Context(), "INSERT INTO koi_schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(t.Context(), Settings{Driver: "sqlite", DSN: path}, nil)
	wantErrText(t, "Open of a newer schema", err, "99", "newer")
}

func TestMigrationsOutOfOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "koi.db")
	m := func(v int) migration { return migration{version: v, name: "m", up: stmts()} }
	_, err := open(t.Context(), Settings{Driver: "sqlite", DSN: path}, nil, []migration{m(2), m(1)})
	wantErrText(t, "open with unordered migrations", err, "out of order")
}

func TestSchemaIdentifiers(t *testing.T) {
	d := sqliteDialect{}
	if _, err := createTableSQL(d, tableDef{name: "koi_" + string(make([]byte, 70))}, false); err == nil {
		t.Error("createTableSQL accepted a 74-byte name")
	}
	if _, err := createIndexSQL(d, "Koi-Index", "koi_users", "host"); err == nil {
		t.Error("createIndexSQL accepted a name with upper case and a dash")
	}
	if _, err := createTableSQL(d, tableDef{name: "koi_x", cols: []columnDef{{name: "a", typ: colType(99)}}}, false); err == nil {
		t.Error("createTableSQL accepted an unknown column type")
	}
}
