package mongobackend

import (
	"context"
	"strings"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Settings configure a Store.
type Settings struct {
	// URI is the MongoDB connection string, "mongodb://host:port/".
	URI string
	// Database is the database holding koi's collections; default "koi".
	Database string
	// FullText turns on searching message bodies from archive queries.
	FullText bool
	// RetentionDays, if positive, deletes archived messages older than
	// that many days, every RetentionInterval (default 1h).
	RetentionDays     int
	RetentionInterval time.Duration
	// ConnectTimeout bounds connecting and the first ping (default 10s).
	ConnectTimeout time.Duration
	// SCRAMIterations is the PBKDF2 iteration count for new passwords;
	// 0 means sdk.DefaultSCRAMIterations.
	SCRAMIterations int
	// ArchiveWriters is how many batches of archived messages are inserted
	// at once (sdk.AppendConcurrency); default defaultArchiveWriters.
	ArchiveWriters int
}

// defaultArchiveWriters keeps a few of the server's cores busy with a
// busy archive, where one insertMany at a time leaves it waiting on each
// round trip.
const defaultArchiveWriters = 4

// fileConfig is the config block as the operator writes it.
type fileConfig struct {
	URI               string `json:"uri"`
	Database          string `json:"database"`
	FullText          bool   `json:"fulltext"`
	RetentionDays     int    `json:"retention_days"`
	RetentionInterval string `json:"retention_interval"`
	ConnectTimeout    string `json:"connect_timeout"`
	SCRAMIterations   int    `json:"scram_iterations"`
	ArchiveWriters    int    `json:"archive_writers"`
}

// ParseConfig decodes the plugin's config block and checks it. Problems
// name the config key to fix.
func ParseConfig(cfg sdk.Config) (Settings, error) {
	var fc fileConfig
	if err := cfg.Decode(&fc); err != nil {
		return Settings{}, err
	}
	s := Settings{URI: fc.URI, Database: fc.Database, FullText: fc.FullText, RetentionDays: fc.RetentionDays,
		SCRAMIterations: fc.SCRAMIterations, ArchiveWriters: fc.ArchiveWriters}
	errs := &sdk.ConfigErrors{Prefix: "mongo backend config"}
	dur := func(key, v string, d *time.Duration) {
		if v == "" {
			return
		}
		x, err := time.ParseDuration(v)
		if err != nil || x <= 0 {
			errs.Add(key, "%q is not a positive duration like \"1h\"", v)
			return
		}
		*d = x
	}
	dur("retention_interval", fc.RetentionInterval, &s.RetentionInterval)
	dur("connect_timeout", fc.ConnectTimeout, &s.ConnectTimeout)
	s.check(errs)
	if err := errs.Err(); err != nil {
		return Settings{}, err
	}
	return s.withDefaults(), nil
}

// Validate is the plugin's sdk.Validator: it checks the config block as New
// does, without connecting.
func Validate(cfg sdk.Config) (sdk.Validation, error) {
	s, err := ParseConfig(cfg)
	if err != nil {
		return sdk.Validation{}, err
	}
	return sdk.Validation{Capabilities: s.capabilities()}, nil
}

// maxSCRAMIterations bounds the PBKDF2 cost so a typo cannot make every
// login take minutes.
const maxSCRAMIterations = 10_000_000

// check adds the problems of s to errs.
func (s Settings) check(errs *sdk.ConfigErrors) {
	switch {
	case s.URI == "":
		errs.Add("uri", `missing; want "mongodb://host:port/"`)
	case !strings.HasPrefix(s.URI, "mongodb://") && !strings.HasPrefix(s.URI, "mongodb+srv://"):
		errs.Add("uri", "must start with mongodb:// or mongodb+srv://")
	}
	if strings.ContainsAny(s.Database, "/\\. \"$\x00") {
		errs.Add("database", "%q is not a valid MongoDB database name", s.Database)
	}
	if s.SCRAMIterations != 0 && (s.SCRAMIterations < sdk.DefaultSCRAMIterations || s.SCRAMIterations > maxSCRAMIterations) {
		errs.Add("scram_iterations", "%d is outside %d..%d", s.SCRAMIterations, sdk.DefaultSCRAMIterations, maxSCRAMIterations)
	}
	if s.RetentionDays < 0 {
		errs.Add("retention_days", "%d is negative", s.RetentionDays)
	}
	if s.ArchiveWriters < 0 || s.ArchiveWriters > sdk.MaxAppendWriters {
		errs.Add("archive_writers", "%d is outside 1..%d", s.ArchiveWriters, sdk.MaxAppendWriters)
	}
}

func (s Settings) withDefaults() Settings {
	if s.Database == "" {
		s.Database = "koi"
	}
	if s.RetentionInterval <= 0 {
		s.RetentionInterval = time.Hour
	}
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = 10 * time.Second
	}
	if s.ArchiveWriters == 0 {
		s.ArchiveWriters = defaultArchiveWriters
	}
	return s
}

// New is the plugin's sdk.Factory.
func New(ctx context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
	s, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return Open(ctx, s, log)
}
