package sqlbackend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

// Settings configure a Store. The zero value of each optional field picks
// its default.
type Settings struct {
	// Driver is the database: "sqlite" (PostgreSQL and MySQL are planned).
	Driver string
	// DSN locates the database; for SQLite a file path, whose directory
	// is created, optionally followed by "?" and driver parameters.
	DSN string
	// SCRAMIterations is the PBKDF2 iteration count for new passwords;
	// 0 means sdk.DefaultSCRAMIterations. Existing credentials keep theirs.
	SCRAMIterations int
	// MaxOpenConns, MaxIdleConns and ConnMaxLifetime tune the connection
	// pool as database/sql does; 0 keeps database/sql's default.
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
}

// maxSCRAMIterations bounds the PBKDF2 cost so a typo cannot make every
// login take minutes.
const maxSCRAMIterations = 10_000_000

// fileConfig is the config block as the operator writes it.
type fileConfig struct {
	Driver          string `json:"driver"`
	DSN             string `json:"dsn"`
	SCRAMIterations int    `json:"scram_iterations"`
	MaxOpenConns    int    `json:"max_open_conns"`
	MaxIdleConns    int    `json:"max_idle_conns"`
	ConnMaxLifetime string `json:"conn_max_lifetime"`
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
		SCRAMIterations: fc.SCRAMIterations,
		MaxOpenConns:    fc.MaxOpenConns,
		MaxIdleConns:    fc.MaxIdleConns,
	}
	if fc.ConnMaxLifetime != "" {
		d, err := time.ParseDuration(fc.ConnMaxLifetime)
		if err != nil {
			return Settings{}, fmt.Errorf("%w: sql backend config: conn_max_lifetime: %v", sdk.ErrInvalid, err)
		}
		s.ConnMaxLifetime = d
	}
	if _, err := s.check(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// check validates s and returns its dialect. Error messages name the config
// key, since that is what the operator has to fix.
func (s Settings) check() (dialect, error) {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	var d dialect
	switch s.Driver {
	case "sqlite":
		d = sqliteDialect{}
	case "":
		bad(`driver: missing; want "sqlite"`)
	case "postgres", "mysql":
		bad(`driver: %q is not supported yet; want "sqlite"`, s.Driver)
	default:
		bad(`driver: unknown %q; want "sqlite"`, s.Driver)
	}
	if s.DSN == "" {
		bad("dsn: missing")
	}
	if s.SCRAMIterations != 0 && (s.SCRAMIterations < sdk.DefaultSCRAMIterations || s.SCRAMIterations > maxSCRAMIterations) {
		bad("scram_iterations: %d is outside %d..%d", s.SCRAMIterations, sdk.DefaultSCRAMIterations, maxSCRAMIterations)
	}
	if s.MaxOpenConns < 0 {
		bad("max_open_conns: %d is negative", s.MaxOpenConns)
	}
	if s.MaxIdleConns < 0 {
		bad("max_idle_conns: %d is negative", s.MaxIdleConns)
	}
	if s.ConnMaxLifetime < 0 {
		bad("conn_max_lifetime: %s is negative", s.ConnMaxLifetime)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: sql backend config: %s", sdk.ErrInvalid, strings.Join(errs, "; "))
	}
	return d, nil
}

// New is the plugin's sdk.Factory: it builds a Store from the config block.
func New(ctx context.Context, cfg sdk.Config, log hclog.Logger) (sdk.Backend, error) {
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
