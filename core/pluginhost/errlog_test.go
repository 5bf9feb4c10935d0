package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func TestErrLogSkipsNormalAnswers(t *testing.T) {
	log, logs := newLogger(t)
	l := newErrLog(log)
	ctx := context.Background()
	for _, err := range []error{nil, sdk.ErrNotFound, sdk.ErrExists, sdk.ErrInvalid, sdk.ErrReadOnly,
		fmt.Errorf("plugin %q: %w", "store", sdk.ErrNotFound)} {
		l.report(ctx, "UserExists", "example.org", err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	l.report(gone, "UserExists", "example.org", context.Canceled)
	if s := logs.String(); s != "" {
		t.Errorf("normal answers and abandoned calls were logged:\n%s", s)
	}
}

func TestErrLogRateLimitsPerMethod(t *testing.T) {
	log, logs := newLogger(t)
	l := newErrLog(log.Named("store"))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	ctx := context.Background()
	boom := errors.New("database is locked")

	l.report(ctx, "CheckPassword", "example.org", boom)
	for range 5 {
		now = now.Add(time.Second / 10)
		l.report(ctx, "CheckPassword", "example.org", boom)
	}
	// Another method has its own limit.
	l.report(ctx, "GetRoster", "example.net", fmt.Errorf("plugin %q: %w", "store", sdk.ErrUnavailable))
	now = now.Add(errLogEvery)
	l.report(ctx, "CheckPassword", "example.org", boom)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), logs.String())
	}
	for i, want := range [][]string{
		{"[WARN]", "koi.store:", "plugin call failed", "method=CheckPassword", "host=example.org", "database is locked"},
		{"[WARN]", "method=GetRoster", "host=example.net", "unavailable"},
		{"[WARN]", "method=CheckPassword", "suppressed=5"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %q: %s", i+1, w, lines[i])
			}
		}
	}
	if strings.Contains(lines[0], "suppressed") {
		t.Errorf("first line counts suppressed errors: %s", lines[0])
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{"a@example.org": "example.org", "example.org": "example.org", "": ""} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// A plain error from the plugin (here a recovered panic) is logged once
// with the method and host; a normal answer is not.
func TestBackendErrorsLogged(t *testing.T) {
	h, logs := startHost(t, spec("store", nil))
	b := mustBackend(t, h, "store")
	if _, err := b.GetVCard(context.Background(), "nobody@example.org"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("GetVCard of an unknown user: %v", err)
	}
	if _, err := b.GetVCard(context.Background(), "panic@example.org"); err == nil {
		t.Fatal("panicking call: no error")
	}
	var failed []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "plugin call failed") {
			failed = append(failed, line)
		}
	}
	if len(failed) != 1 {
		t.Fatalf("got %d failed-call lines, want 1: %q", len(failed), failed)
	}
	for _, w := range []string{"[WARN]", "koi.store:", "method=GetVCard", "host=example.org", "panicked"} {
		if !strings.Contains(failed[0], w) {
			t.Errorf("log line lacks %q: %s", w, failed[0])
		}
	}
}
