package httpbackend

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Features the plugin can serve, as named in config.hcl.
const (
	featureAuth    = "auth"
	featureRoster  = "roster"
	featureArchive = "archive"
)

// Auth styles: which documented variant of the HTTP auth contract the
// service implements (see README).
const (
	styleProsody  = "prosody"
	styleEjabberd = "ejabberd"
)

// Defaults of the optional settings.
const (
	defaultTimeout          = 2 * time.Second
	defaultRetries          = 2
	defaultRetryBackoff     = 100 * time.Millisecond
	defaultBreakerFailures  = 5
	defaultBreakerCooldown  = 10 * time.Second
	defaultMaxResponseBytes = 16 << 20
	// One POST of archived messages at a time unless the operator says the
	// service takes several at once.
	defaultArchiveWriters = 1
)

// options is the plugin's config block as written; Settings is what the
// plugin works with, defaults applied and values checked.
type options struct {
	BaseURL          string   `json:"base_url"`
	Features         []string `json:"features"`
	ReadOnly         []string `json:"read_only"`
	AuthStyle        string   `json:"auth_style"`
	Token            string   `json:"token"`
	BasicAuth        string   `json:"basic_auth"`
	HMACSecret       string   `json:"hmac_secret"`
	CAFile           string   `json:"ca_file"`
	Timeout          *string  `json:"timeout"`
	Retries          *int     `json:"retries"`
	RetryBackoff     *string  `json:"retry_backoff"`
	BreakerFailures  *int     `json:"breaker_failures"`
	BreakerCooldown  *string  `json:"breaker_cooldown"`
	MaxResponseBytes *int64   `json:"max_response_bytes"`
	ArchiveFullText  bool     `json:"archive_full_text"`
	ArchiveRetract   bool     `json:"archive_retract"`
	RosterBatch      bool     `json:"roster_batch"`
	ArchiveWriters   *int     `json:"archive_writers"`
}

// Settings is the checked configuration of the plugin.
type Settings struct {
	BaseURL *url.URL
	// Access per feature; a feature not served is absent.
	Access    map[string]sdk.Access
	AuthStyle string

	Token      string
	BasicUser  string
	BasicPass  string
	HMACSecret []byte
	CAFile     string

	Timeout          time.Duration
	Retries          int
	RetryBackoff     time.Duration
	BreakerFailures  int
	BreakerCooldown  time.Duration
	MaxResponseBytes int64
	// ArchiveFullText declares that the service serves the text filter
	// of archive queries.
	ArchiveFullText bool
	// ArchiveRetract declares that the service serves PUT
	// archive/{owner}/messages/{stanza_id}: a moderated message replaced
	// by a tombstone.
	ArchiveRetract bool
	// RosterBatch declares that the service serves POST roster_changes:
	// both sides of a subscription in one call, all or none.
	RosterBatch bool
	// ArchiveWriters is how many POSTs of archived messages may be in
	// flight at once (sdk.AppendConcurrency).
	ArchiveWriters int
}

// ParseConfig decodes and checks the plugin's config block. Every error
// wraps sdk.ErrInvalid and names the key at fault.
func ParseConfig(cfg sdk.Config) (Settings, error) {
	var o options
	if err := cfg.Decode(&o); err != nil {
		return Settings{}, err
	}
	bad := func(format string, args ...any) (Settings, error) {
		return Settings{}, fmt.Errorf("%w: config: %s", sdk.ErrInvalid, fmt.Sprintf(format, args...))
	}

	if o.BaseURL == "" {
		return bad("base_url is required")
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("base_url %q: want an absolute http:// or https:// URL", o.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("base_url %q: no query or fragment, please", o.BaseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""

	s := Settings{
		BaseURL:          u,
		Access:           map[string]sdk.Access{},
		AuthStyle:        styleProsody,
		Token:            o.Token,
		HMACSecret:       []byte(o.HMACSecret),
		CAFile:           o.CAFile,
		Timeout:          defaultTimeout,
		Retries:          defaultRetries,
		RetryBackoff:     defaultRetryBackoff,
		BreakerFailures:  defaultBreakerFailures,
		BreakerCooldown:  defaultBreakerCooldown,
		MaxResponseBytes: defaultMaxResponseBytes,
		ArchiveFullText:  o.ArchiveFullText,
		ArchiveRetract:   o.ArchiveRetract,
		RosterBatch:      o.RosterBatch,
		ArchiveWriters:   defaultArchiveWriters,
	}

	if len(o.Features) == 0 {
		return bad("features is required: a list of %q, %q, %q", featureAuth, featureRoster, featureArchive)
	}
	for _, f := range o.Features {
		switch f {
		case featureAuth, featureRoster, featureArchive:
		default:
			return bad("features: unknown feature %q (want %q, %q or %q)", f, featureAuth, featureRoster, featureArchive)
		}
		if _, dup := s.Access[f]; dup {
			return bad("features: %q listed twice", f)
		}
		s.Access[f] = sdk.AccessReadWrite
	}
	for _, f := range o.ReadOnly {
		if _, ok := s.Access[f]; !ok {
			return bad("read_only: %q is not in features", f)
		}
		if f == featureArchive {
			// koi both writes and reads an archive: a read-only one
			// would lose every message.
			return bad("read_only: the archive cannot be read-only")
		}
		s.Access[f] = sdk.AccessRead
	}

	if s.ArchiveFullText && !s.serves(featureArchive) {
		return bad("archive_full_text without the archive in features")
	}
	if s.ArchiveRetract && !s.serves(featureArchive) {
		return bad("archive_retract without the archive in features")
	}
	if s.RosterBatch && !s.Access[featureRoster].Writable() {
		return bad("roster_batch without a read-write roster in features")
	}

	switch o.AuthStyle {
	case "":
	case styleProsody, styleEjabberd:
		s.AuthStyle = o.AuthStyle
	default:
		return bad("auth_style %q: want %q or %q", o.AuthStyle, styleProsody, styleEjabberd)
	}

	if o.BasicAuth != "" {
		user, pass, ok := strings.Cut(o.BasicAuth, ":")
		if !ok || user == "" {
			return bad("basic_auth: want \"user:password\"")
		}
		s.BasicUser, s.BasicPass = user, pass
	}
	if o.Token != "" && o.BasicAuth != "" {
		// Both would go in the Authorization header.
		return bad("token and basic_auth exclude each other")
	}

	for _, d := range []struct {
		key string
		in  *string
		out *time.Duration
	}{
		{"timeout", o.Timeout, &s.Timeout},
		{"retry_backoff", o.RetryBackoff, &s.RetryBackoff},
		{"breaker_cooldown", o.BreakerCooldown, &s.BreakerCooldown},
	} {
		if d.in == nil {
			continue
		}
		v, err := time.ParseDuration(*d.in)
		if err != nil {
			return bad("%s: want a duration such as \"5s\": %v", d.key, err)
		}
		if v <= 0 {
			return bad("%s must be positive", d.key)
		}
		*d.out = v
	}
	if o.Retries != nil {
		if s.Retries = *o.Retries; s.Retries < 0 || s.Retries > 10 {
			return bad("retries %d: want 0 to 10", s.Retries)
		}
	}
	if o.BreakerFailures != nil {
		if s.BreakerFailures = *o.BreakerFailures; s.BreakerFailures < 1 {
			return bad("breaker_failures %d: want at least 1", s.BreakerFailures)
		}
	}
	if o.ArchiveWriters != nil {
		if !s.serves(featureArchive) {
			return bad("archive_writers without the archive in features")
		}
		if s.ArchiveWriters = *o.ArchiveWriters; s.ArchiveWriters < 1 || s.ArchiveWriters > sdk.MaxAppendWriters {
			return bad("archive_writers %d: want 1 to %d", s.ArchiveWriters, sdk.MaxAppendWriters)
		}
	}
	if o.MaxResponseBytes != nil {
		if s.MaxResponseBytes = *o.MaxResponseBytes; s.MaxResponseBytes < 1024 {
			return bad("max_response_bytes %d: want at least 1024", s.MaxResponseBytes)
		}
	}
	return s, nil
}

// serves reports whether the feature is configured.
func (s Settings) serves(feature string) bool {
	_, ok := s.Access[feature]
	return ok
}

// features lists the served features, sorted, for the log.
func (s Settings) features() []string {
	var fs []string
	for f, a := range s.Access {
		fs = append(fs, f+" ("+a.String()+")")
	}
	slices.Sort(fs)
	return fs
}
