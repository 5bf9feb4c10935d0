package sqlbackend

import (
	"context"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Settings configure a Store. The zero value of each optional field picks
// its default.
type Settings struct {
	// Driver is the database: "sqlite", "postgres", or "mysql" (also
	// spelt "mariadb").
	Driver string
	// DSN locates the database. SQLite: a file path, whose directory is
	// created, optionally followed by "?" and driver parameters.
	// PostgreSQL: a URL (postgres://user:pw@host:5432/db?sslmode=disable)
	// or key=value pairs, as pgx reads them. MySQL/MariaDB:
	// user:pw@tcp(host:3306)/db?params, as go-sql-driver/mysql reads it.
	DSN string
	// Schema is PostgreSQL's schema for koi's tables, set as the
	// connection's search_path; it must exist. Empty keeps the dsn's or
	// the server's search_path (normally "public").
	Schema string
	// SCRAMIterations is the PBKDF2 iteration count for new passwords;
	// 0 means sdk.DefaultSCRAMIterations. Existing credentials keep theirs.
	SCRAMIterations int
	// MaxOpenConns, MaxIdleConns and ConnMaxLifetime tune the connection
	// pool as database/sql does; 0 keeps database/sql's default.
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	// ArchiveWriters is how many batches of archived messages are stored
	// at once, each in its own transaction on its own connection; 0 means
	// defaultArchiveWriters on a database server and 1 on SQLite, whose
	// single writer would only make the others wait.
	ArchiveWriters int
}

// defaultArchiveWriters lets a busy archive keep a few of a database
// server's cores busy: one connection alone leaves PostgreSQL waiting on
// each commit and on the plugin between transactions.
const defaultArchiveWriters = 4

// maxSCRAMIterations bounds the PBKDF2 cost so a typo cannot make every
// login take minutes.
const maxSCRAMIterations = 10_000_000

// fileConfig is the config block as the operator writes it.
type fileConfig struct {
	Driver          string `json:"driver"`
	DSN             string `json:"dsn"`
	Schema          string `json:"schema"`
	SCRAMIterations int    `json:"scram_iterations"`
	MaxOpenConns    int    `json:"max_open_conns"`
	MaxIdleConns    int    `json:"max_idle_conns"`
	ConnMaxLifetime string `json:"conn_max_lifetime"`
	ArchiveWriters  int    `json:"archive_writers"`
}

// ParseConfig decodes the plugin's config block into Settings and checks it.
func ParseConfig(cfg sdk.Config) (Settings, error) {
	var fc fileConfig
	if err := cfg.Decode(&fc); err != nil {
		return Settings{}, err
	}
	s := Settings{
		Driver:          fc.Driver,
		DSN:             fc.DSN,
		Schema:          fc.Schema,
		SCRAMIterations: fc.SCRAMIterations,
		MaxOpenConns:    fc.MaxOpenConns,
		MaxIdleConns:    fc.MaxIdleConns,
		ArchiveWriters:  fc.ArchiveWriters,
	}
	errs := &sdk.ConfigErrors{Prefix: "sql backend config"}
	if fc.ConnMaxLifetime != "" {
		d, err := time.ParseDuration(fc.ConnMaxLifetime)
		if err != nil {
			errs.Add("conn_max_lifetime", "%v", err)
		}
		s.ConnMaxLifetime = d
	}
	s.checkInto(errs)
	if err := errs.Err(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// Validate is the plugin's sdk.Validator: it checks the config block as New
// does, without opening the database.
func Validate(cfg sdk.Config) (sdk.Validation, error) {
	if _, err := ParseConfig(cfg); err != nil {
		return sdk.Validation{}, err
	}
	return sdk.Validation{Capabilities: capabilities()}, nil
}

// check validates s and returns its dialect. Error messages name the config
// key, since that is what the operator has to fix.
func (s Settings) check() (dialect, error) {
	errs := &sdk.ConfigErrors{Prefix: "sql backend config"}
	d := s.checkInto(errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return d, nil
}

// checkInto adds the problems of s to errs and returns its dialect.
func (s Settings) checkInto(errs *sdk.ConfigErrors) dialect {
	bad := errs.Add
	var d dialect
	const want = `want "sqlite", "postgres" or "mysql" (or "mariadb")`
	switch s.Driver {
	case "sqlite":
		d = sqliteDialect{}
	case "postgres":
		d = postgresDialect{}
	case "mysql", "mariadb":
		d = mysqlDialect{}
	case "":
		bad("driver", "missing; %s", want)
	default:
		bad("driver", "unknown %q; %s", s.Driver, want)
	}
	if s.DSN == "" {
		bad("dsn", "missing")
	}
	if s.Schema != "" {
		if _, ok := d.(postgresDialect); !ok {
			bad("schema", "only driver postgres has schemas; name the database in dsn instead")
		} else if !validSchema(s.Schema) {
			bad("schema", "%q is not a plain identifier (a-z, 0-9 and _, not starting with a digit, at most 63 bytes)", s.Schema)
		}
	}
	if s.SCRAMIterations != 0 && (s.SCRAMIterations < sdk.DefaultSCRAMIterations || s.SCRAMIterations > maxSCRAMIterations) {
		bad("scram_iterations", "%d is outside %d..%d", s.SCRAMIterations, sdk.DefaultSCRAMIterations, maxSCRAMIterations)
	}
	if s.MaxOpenConns < 0 {
		bad("max_open_conns", "%d is negative", s.MaxOpenConns)
	}
	if s.MaxIdleConns < 0 {
		bad("max_idle_conns", "%d is negative", s.MaxIdleConns)
	}
	if s.ConnMaxLifetime < 0 {
		bad("conn_max_lifetime", "%s is negative", s.ConnMaxLifetime)
	}
	switch _, sqlite := d.(sqliteDialect); {
	case s.ArchiveWriters < 0 || s.ArchiveWriters > sdk.MaxAppendWriters:
		bad("archive_writers", "%d is outside 1..%d", s.ArchiveWriters, sdk.MaxAppendWriters)
	case sqlite && s.ArchiveWriters > 1:
		bad("archive_writers", "SQLite has a single writer; only 1 makes sense")
	case s.MaxOpenConns > 0 && s.ArchiveWriters > s.MaxOpenConns:
		bad("archive_writers", "%d is more than max_open_conns (%d): each writer needs a connection", s.ArchiveWriters, s.MaxOpenConns)
	}
	return d
}

// New is the plugin's sdk.Factory: it builds a Store from the config block.
func New(ctx context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
	s, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	st, err := Open(ctx, s, log)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// validSchema accepts the identifiers PostgreSQL takes unquoted and folds
// to nothing else, so the name can go into search_path as it is.
func validSchema(name string) bool {
	if name == "" || len(name) > 63 || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
