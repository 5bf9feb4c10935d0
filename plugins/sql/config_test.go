package sqlbackend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

func TestParseConfig(t *testing.T) {
	got, err := ParseConfig(sdk.Config{Raw: []byte(`{"driver":"sqlite","dsn":"data/koi.db","scram_iterations":8192,
		"max_open_conns":4,"max_idle_conns":2,"conn_max_lifetime":"90s","archive_writers":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Driver: "sqlite", DSN: "data/koi.db", SCRAMIterations: 8192, MaxOpenConns: 4, MaxIdleConns: 2,
		ConnMaxLifetime: 90 * time.Second, ArchiveWriters: 1}
	if got != want {
		t.Errorf("ParseConfig = %+v, want %+v", got, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, raw, key string
	}{
		{"unknown key", `{"driver":"sqlite","dsn":"a.db","dns":"b.db"}`, "dns"},
		{"empty config", ``, "driver"},
		{"missing driver", `{"dsn":"a.db"}`, "driver"},
		{"unknown driver", `{"driver":"oracle","dsn":"a.db"}`, "driver"},
		{"schema for sqlite", `{"driver":"sqlite","dsn":"a.db","schema":"koi"}`, "schema"},
		{"schema for mysql", `{"driver":"mysql","dsn":"root@tcp(db:3306)/koi","schema":"koi"}`, "schema"},
		{"schema upper case", `{"driver":"postgres","dsn":"postgres://db/koi","schema":"Koi"}`, "schema"},
		{"schema injection", `{"driver":"postgres","dsn":"postgres://db/koi","schema":"koi,public"}`, "schema"},
		{"schema digit first", `{"driver":"postgres","dsn":"postgres://db/koi","schema":"1koi"}`, "schema"},
		{"schema not a string", `{"driver":"postgres","dsn":"postgres://db/koi","schema":1}`, "schema"},
		{"driver wrong type", `{"driver":1,"dsn":"a.db"}`, "driver"},
		{"missing dsn", `{"driver":"sqlite"}`, "dsn"},
		{"iterations too low", `{"driver":"sqlite","dsn":"a.db","scram_iterations":100}`, "scram_iterations"},
		{"iterations too high", `{"driver":"sqlite","dsn":"a.db","scram_iterations":2000000000}`, "scram_iterations"},
		{"iterations a string", `{"driver":"sqlite","dsn":"a.db","scram_iterations":"4096"}`, "scram_iterations"},
		{"negative open conns", `{"driver":"sqlite","dsn":"a.db","max_open_conns":-1}`, "max_open_conns"},
		{"negative idle conns", `{"driver":"sqlite","dsn":"a.db","max_idle_conns":-1}`, "max_idle_conns"},
		{"bad lifetime", `{"driver":"sqlite","dsn":"a.db","conn_max_lifetime":"5 minutes"}`, "conn_max_lifetime"},
		{"negative lifetime", `{"driver":"sqlite","dsn":"a.db","conn_max_lifetime":"-5m"}`, "conn_max_lifetime"},
		{"archive writers on sqlite", `{"driver":"sqlite","dsn":"a.db","archive_writers":2}`, "archive_writers"},
		{"negative archive writers", `{"driver":"postgres","dsn":"postgres://db/koi","archive_writers":-1}`, "archive_writers"},
		{"too many archive writers", `{"driver":"postgres","dsn":"postgres://db/koi","archive_writers":65}`, "archive_writers"},
		{"archive writers past the pool", `{"driver":"mysql","dsn":"root@tcp(db:3306)/koi","max_open_conns":2,"archive_writers":3}`, "archive_writers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(sdk.Config{Raw: []byte(tt.raw)})
			wantErrText(t, "ParseConfig", err, tt.key)
			wantErr(t, "ParseConfig", err, sdk.ErrInvalid)
		})
	}
}

func TestNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "koi.db")
	raw := []byte(`{"driver":"sqlite","dsn":"` + path + `"}`)
	b, err := New(t.Context(), sdk.Config{Raw: raw}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
	want := sdk.Capabilities{
		Auth:   sdk.AuthCapabilities{Access: sdk.AccessReadWrite, SCRAM: true},
		Roster: sdk.AccessReadWrite, Offline: sdk.AccessReadWrite, VCard: sdk.AccessReadWrite, Private: sdk.AccessReadWrite,
		Blocklist: sdk.AccessReadWrite, Tokens: sdk.AccessReadWrite, MUC: sdk.AccessReadWrite, PubSub: sdk.AccessReadWrite,
		Archive:     sdk.ArchiveCapabilities{Access: sdk.AccessReadWrite, FullText: true, Retract: true},
		RosterBatch: true,
	}
	if got := b.Capabilities(); got != want {
		t.Errorf("Capabilities = %+v, want %+v", got, want)
	}
	if err := b.(sdk.Pinger).Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}

	_, err = New(t.Context(), sdk.Config{Raw: []byte(`{"driver":"sqlite"}`)}, nil)
	wantErrText(t, "New without dsn", err, "dsn")
}

func TestOpenDSN(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, dsn, want string
	}{
		{"memory", ":memory:", "dsn"},
		{"memory mode", filepath.Join(dir, "x.db") + "?mode=memory", "dsn"},
		{"uri", "file:" + filepath.Join(dir, "x.db"), "dsn"},
		{"txlock", filepath.Join(dir, "x.db") + "?_txlock=deferred", "_txlock"},
		{"bad query", filepath.Join(dir, "x.db") + "?%zz", "dsn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), Settings{Driver: "sqlite", DSN: tt.dsn}, nil)
			if err == nil {
				s.Close()
			}
			wantErrText(t, "Open", err, tt.want)
		})
	}

	t.Run("directory is a file", func(t *testing.T) {
		file := filepath.Join(dir, "plain")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(t.Context(), Settings{Driver: "sqlite", DSN: filepath.Join(file, "koi.db")}, nil)
		if err == nil {
			s.Close()
			t.Fatal("Open under a plain file succeeded")
		}
	})
}

func TestSQLitePragmas(t *testing.T) {
	pragma := func(t *testing.T, s *Store, name string) string {
		t.Helper()
		var v string
		if err := s.db.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	s, _ := openTest(t)
	for name, want := range map[string]string{"busy_timeout": "5000", "journal_mode": "wal", "foreign_keys": "1", "synchronous": "1",
		"cache_size": "-32768", "temp_store": "2", "wal_autocheckpoint": "10000"} {
		if got := pragma(t, s, name); got != want {
			t.Errorf("PRAGMA %s = %s, want %s", name, got, want)
		}
	}

	// The operator's own pragma wins over koi's default, in either form.
	for _, param := range []string{"_pragma=busy_timeout(1234)&_pragma=cache_size(-100)", "_timeout=1234&_pragma=cache_size(-100)"} {
		path := filepath.Join(t.TempDir(), "own.db")
		s2, err := Open(t.Context(), Settings{Driver: "sqlite", DSN: path + "?" + param, MaxOpenConns: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := pragma(t, s2, "busy_timeout"); got != "1234" {
			t.Errorf("%s: busy_timeout = %s, want the operator's 1234", param, got)
		}
		if got := pragma(t, s2, "cache_size"); got != "-100" {
			t.Errorf("%s: cache_size = %s, want the operator's -100", param, got)
		}
		if got := pragma(t, s2, "journal_mode"); got != "wal" {
			t.Errorf("%s: journal_mode = %s, want wal", param, got)
		}
		s2.Close()
	}
}

func TestSettingsIterations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "koi.db")
	s, err := Open(t.Context(), Settings{Driver: "sqlite", DSN: path, SCRAMIterations: 5000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateUser(t.Context(), "example.org", "ann", "secret"); err != nil {
		t.Fatal(err)
	}
	c, err := s.SCRAMCredentials(t.Context(), "example.org", "ann", sdk.HashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if c.Iterations != 5000 {
		t.Errorf("iterations = %d, want 5000", c.Iterations)
	}
}

func TestOpenInvalidSettings(t *testing.T) {
	_, err := Open(t.Context(), Settings{DSN: "x.db"}, nil)
	wantErrText(t, "Open without driver", err, "driver")
	if !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
}

// A dsn the driver cannot read is reported under the dsn key, without the
// password it may hold.
func TestOpenBadDSN(t *testing.T) {
	tests := []struct{ driver, dsn, want string }{
		{"postgres", "postgres://koi:s3cret-pw@db:notaport/koi", "dsn"},
		{"postgres", "host=db password=s3cret-pw port=x", "dsn"},
		{"mysql", "koi:s3cret-pw@tcp(db:3306)", "dsn"},
		{"mysql", "koi:s3cret-pw@tcp(db:3306)/", "no database"},
		{"mariadb", "koi:s3cret-pw@tcp(db:3306)/koi?timeout=soon", "dsn"},
		{"postgres", "postgres://koi:s3cret-pw@db/koi?search_path=x", "schema"},
	}
	for _, tt := range tests {
		t.Run(tt.driver+" "+tt.want, func(t *testing.T) {
			set := Settings{Driver: tt.driver, DSN: tt.dsn}
			if strings.Contains(tt.dsn, "search_path") {
				set.Schema = "koi"
			}
			s, err := Open(t.Context(), set, nil)
			if err == nil {
				s.Close()
			}
			wantErrText(t, "Open", err, tt.want)
			wantErr(t, "Open", err, sdk.ErrInvalid)
			if err != nil && strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// A server that does not answer gives sdk.ErrUnavailable, within the
// caller's deadline.
func TestOpenUnreachable(t *testing.T) {
	for _, set := range []Settings{
		{Driver: "postgres", DSN: "postgres://koi@127.0.0.1:1/koi?sslmode=disable"},
		{Driver: "mysql", DSN: "koi@tcp(127.0.0.1:1)/koi"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := Open(ctx, set, nil)
		cancel()
		wantErr(t, set.Driver, err, sdk.ErrUnavailable)
	}
}

// The postgres schema must exist; the error says how to make it.
func TestOpenMissingSchema(t *testing.T) {
	set := testSettings(t, "postgres")
	set.Schema = "koi_test_absent_" + randomHex(4)
	_, err := Open(t.Context(), set, nil)
	wantErrText(t, "Open", err, "schema", set.Schema, "CREATE SCHEMA")
}

func TestParseConfigDrivers(t *testing.T) {
	for _, raw := range []string{
		`{"driver":"postgres","dsn":"postgres://db/koi","schema":"koi_1"}`,
		`{"driver":"mysql","dsn":"root@tcp(db:3306)/koi"}`,
		`{"driver":"mariadb","dsn":"root@tcp(db:3306)/koi","max_open_conns":20,"max_idle_conns":5,"conn_max_lifetime":"5m"}`,
	} {
		if _, err := ParseConfig(sdk.Config{Raw: []byte(raw)}); err != nil {
			t.Errorf("ParseConfig(%s): %v", raw, err)
		}
	}
}
