package httpbackend

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg, want string
	}{
		{`{"base_url": "http://x", "features": ["auth"], "tokn": "t"}`, `tokn: unknown key`},
		{`{"features": ["auth"]}`, "base_url is required"},
		{`{"base_url": "ftp://x", "features": ["auth"]}`, "base_url"},
		{`{"base_url": "http://x?a=b", "features": ["auth"]}`, "no query"},
		{`{"base_url": "http://x"}`, "features is required"},
		{`{"base_url": "http://x", "features": ["vcard"]}`, `unknown feature "vcard"`},
		{`{"base_url": "http://x", "features": ["auth", "auth"]}`, "twice"},
		{`{"base_url": "http://x", "features": ["auth"], "read_only": ["roster"]}`, `"roster" is not in features`},
		{`{"base_url": "http://x", "features": ["archive"], "read_only": ["archive"]}`, "archive cannot be read-only"},
		{`{"base_url": "http://x", "features": ["auth"], "auth_style": "openfire"}`, "auth_style"},
		{`{"base_url": "http://x", "features": ["auth"], "token": "t", "basic_auth": "a:b"}`, "exclude each other"},
		{`{"base_url": "http://x", "features": ["auth"], "basic_auth": "ab"}`, "basic_auth"},
		{`{"base_url": "http://x", "features": ["auth"], "timeout": "soon"}`, "timeout"},
		{`{"base_url": "http://x", "features": ["auth"], "timeout": "-1s"}`, "timeout must be positive"},
		{`{"base_url": "http://x", "features": ["auth"], "retries": 11}`, "retries"},
		{`{"base_url": "http://x", "features": ["auth"], "breaker_failures": 0}`, "breaker_failures"},
		{`{"base_url": "http://x", "features": ["auth"], "max_response_bytes": 10}`, "max_response_bytes"},
		{`{"base_url": "http://x", "features": ["auth"], "roster_batch": true}`, "roster_batch without a read-write roster"},
		{`{"base_url": "http://x", "features": ["auth"], "archive_retract": true}`, "archive_retract without the archive in features"},
		{`{"base_url": "http://x", "features": ["roster"], "read_only": ["roster"], "roster_batch": true}`, "roster_batch without a read-write roster"},
		{`{"base_url": "http://x", "features": ["auth"], "archive_writers": 4}`, "archive_writers without the archive"},
		{`{"base_url": "http://x", "features": ["archive"], "archive_writers": 0}`, "archive_writers 0: want 1 to 64"},
		{`{"base_url": "http://x", "features": ["archive"], "archive_writers": 65}`, "archive_writers 65: want 1 to 64"},
	} {
		_, err := ParseConfig(sdk.Config{Raw: []byte(c.cfg)})
		if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one wrapping sdk.ErrInvalid and mentioning %q", c.cfg, err, c.want)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	s, err := ParseConfig(sdk.Config{Raw: []byte(`{"base_url": "https://api.example/xmpp/", "features": ["auth", "roster", "archive"], "read_only": ["auth"], "timeout": "2s"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.BaseURL.String(); got != "https://api.example/xmpp" {
		t.Errorf("base URL %q: the trailing slash should go", got)
	}
	want := map[string]sdk.Access{"auth": sdk.AccessRead, "roster": sdk.AccessReadWrite, "archive": sdk.AccessReadWrite}
	for f, a := range want {
		if s.Access[f] != a {
			t.Errorf("access of %s: %v, want %v", f, s.Access[f], a)
		}
	}
	if s.RosterBatch || s.capabilities().RosterBatch {
		t.Error("roster batches are declared without roster_batch")
	}
	if s.AuthStyle != styleProsody || s.Timeout != 2*time.Second || s.Retries != defaultRetries ||
		s.BreakerFailures != defaultBreakerFailures || s.MaxResponseBytes != defaultMaxResponseBytes ||
		s.ArchiveWriters != 1 {
		t.Errorf("defaults not applied: %+v", s)
	}
	s, err = ParseConfig(sdk.Config{Raw: []byte(`{"base_url": "http://x", "features": ["archive"], "archive_writers": 4}`)})
	if err != nil || (&Backend{set: s}).AppendWriters() != 4 {
		t.Errorf("archive_writers 4: %v, AppendWriters %d", err, (&Backend{set: s}).AppendWriters())
	}
}
