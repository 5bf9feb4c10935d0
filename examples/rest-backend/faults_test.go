package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	httpbackend "github.com/koi-im/koi/plugins/http"
	"github.com/koi-im/koi/sdk"
)

// setFault switches the service's fault through its admin endpoint.
func setFault(t *testing.T, url string, f fault) {
	t.Helper()
	body, _ := json.Marshal(f)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, url+"/_admin/fault", bytes.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT /_admin/fault: status %d", res.StatusCode)
	}
}

// faultyPlugin starts an open service (no credentials, so the test can
// reach its admin endpoint simply) and a plugin calling it.
func faultyPlugin(t *testing.T, extra map[string]any) (*server, string, *httpbackend.Backend) {
	t.Helper()
	srv, ts := startService(t, options{})
	cfg := map[string]any{"base_url": ts.URL, "features": []string{"auth", "roster", "archive"}}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, _ := json.Marshal(cfg)
	return srv, ts.URL, newPluginBackend(t, raw)
}

const owner = "juliet@example.com"

func testMessage(i int) sdk.ArchivedMessage {
	return sdk.ArchivedMessage{
		Owner: owner, StanzaID: "sid" + strings.Repeat("0", 6) + string(rune('0'+i)), Peer: "romeo@example.net",
		Stamp: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), Stanza: "<message/>", Body: "hi",
	}
}

// TestFaultsAreUnavailable checks that every way the service can fail
// reaches koi as sdk.ErrUnavailable, for every feature, and that it
// recovers once the fault is gone.
func TestFaultsAreUnavailable(t *testing.T) {
	_, url, b := faultyPlugin(t, map[string]any{
		"retries": 0, "timeout": "150ms", "max_response_bytes": 4096, "breaker_failures": 1000,
	})
	calls := map[string]func() error{
		"CheckPassword": func() error { _, err := b.CheckPassword(t.Context(), "example.com", "juliet", "pw"); return err },
		"GetRoster":     func() error { _, err := b.GetRoster(t.Context(), owner); return err },
		"SetItem": func() error {
			_, err := b.SetItem(t.Context(), owner, sdk.RosterItem{JID: "romeo@example.net", Subscription: sdk.SubBoth})
			return err
		},
		"QueryArchive": func() error {
			_, err := b.QueryArchive(t.Context(), sdk.ArchiveQuery{Owner: owner, Max: 10})
			return err
		},
		"AppendArchive": func() error {
			return b.AppendArchive(t.Context(), []sdk.ArchivedMessage{testMessage(1)})
		},
	}
	for _, f := range []fault{
		{Mode: faultError},
		{Mode: faultTimeout, Delay: "10s"},
		{Mode: faultMalformed},
		{Mode: faultOversized, Bytes: 64 << 10},
	} {
		setFault(t, url, f)
		for name, call := range calls {
			if err := call(); !errors.Is(err, sdk.ErrUnavailable) {
				t.Errorf("fault %q: %s: error %v, want one wrapping sdk.ErrUnavailable", f.Mode, name, err)
			}
		}
	}
	setFault(t, url, fault{})
	for name, call := range calls {
		if err := call(); err != nil {
			t.Errorf("without faults: %s: %v", name, err)
		}
	}
}

// TestRetriesOnlyIdempotent checks that reads and archive appends are
// retried after a failure, and other writes are not.
func TestRetriesOnlyIdempotent(t *testing.T) {
	srv, url, b := faultyPlugin(t, map[string]any{"retries": 2, "retry_backoff": "1ms", "breaker_failures": 1000})
	setFault(t, url, fault{Mode: faultError})
	for _, c := range []struct {
		pattern string
		call    func() error
		tries   int
	}{
		{"/check_password", func() error { _, err := b.CheckPassword(t.Context(), "example.com", "juliet", "pw"); return err }, 3},
		{"GET /roster/{owner}", func() error { _, err := b.GetRoster(t.Context(), owner); return err }, 3},
		{"POST /archive/messages", func() error { return b.AppendArchive(t.Context(), []sdk.ArchivedMessage{testMessage(1)}) }, 3},
		{"POST /archive/{owner}/query", func() error {
			_, err := b.QueryArchive(t.Context(), sdk.ArchiveQuery{Owner: owner, Max: 1})
			return err
		}, 3},
		{"/register", func() error { return b.CreateUser(t.Context(), "example.com", "juliet", "pw") }, 1},
		{"PUT /roster/{owner}/items/{contact}", func() error {
			_, err := b.SetItem(t.Context(), owner, sdk.RosterItem{JID: "romeo@example.net", Subscription: sdk.SubBoth})
			return err
		}, 1},
		{"DELETE /roster/{owner}", func() error { return b.DeleteRoster(t.Context(), owner) }, 1},
	} {
		before := srv.hitCount(c.pattern)
		if err := c.call(); !errors.Is(err, sdk.ErrUnavailable) {
			t.Errorf("%s: error %v, want sdk.ErrUnavailable", c.pattern, err)
		}
		if got := srv.hitCount(c.pattern) - before; got != c.tries {
			t.Errorf("%s: %d requests, want %d", c.pattern, got, c.tries)
		}
	}

	// A transient failure of a read is hidden by the retry.
	setFault(t, url, fault{Mode: faultError, Times: 2})
	if _, err := b.GetRoster(t.Context(), owner); err != nil {
		t.Errorf("GetRoster after two failures and with two retries: %v", err)
	}
}

// TestBreaker checks that repeated failures open the breaker, which then
// fails calls without asking the service, and that it closes alone once a
// probe after the cool-down succeeds.
func TestBreaker(t *testing.T) {
	const cooldown = 300 * time.Millisecond
	srv, url, b := faultyPlugin(t, map[string]any{"retries": 0, "breaker_failures": 3, "breaker_cooldown": cooldown.String()})
	const pattern = "GET /roster/{owner}"
	get := func() error { _, err := b.GetRoster(t.Context(), owner); return err }

	setFault(t, url, fault{Mode: faultError})
	for i := range 3 {
		if err := get(); !errors.Is(err, sdk.ErrUnavailable) {
			t.Fatalf("call %d: %v, want sdk.ErrUnavailable", i, err)
		}
	}
	if n := srv.hitCount(pattern); n != 3 {
		t.Fatalf("%d requests before the breaker opened, want 3", n)
	}
	// Open: fails fast, whatever the feature, without a request.
	start := time.Now()
	err := get()
	if !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "circuit breaker") {
		t.Errorf("with the breaker open: %v, want a breaker error wrapping sdk.ErrUnavailable", err)
	}
	if _, err := b.CheckPassword(t.Context(), "example.com", "juliet", "pw"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("CheckPassword with the breaker open: %v", err)
	}
	if d := time.Since(start); d > cooldown/2 {
		t.Errorf("failing fast took %v", d)
	}
	if n := srv.hitCount(pattern); n != 3 {
		t.Errorf("%d requests, want still 3 while the breaker is open", n)
	}

	// Half-open with the service still failing: the one probe fails and
	// the breaker opens again.
	time.Sleep(cooldown + 50*time.Millisecond)
	if err := get(); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("the failing probe: %v", err)
	}
	if n := srv.hitCount(pattern); n != 4 {
		t.Errorf("%d requests, want 4 (one probe)", n)
	}
	if err := get(); err == nil || !strings.Contains(err.Error(), "circuit breaker") {
		t.Errorf("after a failed probe: %v, want the breaker open again", err)
	}

	// The service recovers; after the cool-down the probe succeeds and
	// the breaker closes.
	setFault(t, url, fault{})
	if err := get(); err == nil {
		t.Error("the breaker closed before its cool-down")
	}
	time.Sleep(cooldown + 50*time.Millisecond)
	for i := range 3 {
		if err := get(); err != nil {
			t.Errorf("call %d after recovery: %v", i, err)
		}
	}
}

// TestBadCredentials checks what a refused signature gives: in the auth
// contract a 401 means a wrong password, as both variants define it; in
// the JSON contract it is an error about koi's credentials, and not an
// outage (the breaker stays closed).
func TestBadCredentials(t *testing.T) {
	_, ts := startService(t, signedOptions())
	b := newPluginBackend(t, pluginConfig(t, ts.URL, map[string]any{"hmac_secret": "wrong"}))
	if ok, err := b.CheckPassword(t.Context(), "example.com", "juliet", "pw"); ok || err != nil {
		t.Errorf("CheckPassword with a wrong HMAC secret: %v, %v; want false, nil", ok, err)
	}
	for range 10 {
		_, err := b.GetRoster(t.Context(), owner)
		if err == nil || errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "credentials") {
			t.Fatalf("GetRoster with a wrong HMAC secret: %v, want an error about credentials", err)
		}
	}
}

// TestDroppedConnections checks the two faults that hang up: "close"
// before the request is handled and "lost" after it is (a write is
// applied but its answer never arrives). Both are temporary failures; the
// idempotent archive append is retried and stores the message once, and a
// roster write, whose repeat the service might not absorb, is not retried.
func TestDroppedConnections(t *testing.T) {
	srv, url, b := faultyPlugin(t, map[string]any{"retries": 0, "breaker_failures": 1000})
	msg := testMessage(1)
	count := func() int {
		t.Helper()
		p, err := b.QueryArchive(t.Context(), sdk.ArchiveQuery{Owner: owner, Max: 10, Count: true})
		if err != nil {
			t.Fatal(err)
		}
		return p.Count
	}

	setFault(t, url, fault{Mode: faultClose, Times: 1})
	if err := b.AppendArchive(t.Context(), []sdk.ArchivedMessage{msg}); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("append with the connection closed: %v, want sdk.ErrUnavailable", err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d messages stored by a request the service never handled", n)
	}

	setFault(t, url, fault{Mode: faultLost, Times: 1})
	if err := b.AppendArchive(t.Context(), []sdk.ArchivedMessage{msg}); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("append whose answer was lost: %v, want sdk.ErrUnavailable", err)
	}
	if n := count(); n != 1 {
		t.Errorf("%d messages after a lost answer, want 1 (the service applied it)", n)
	}
	// koi's writer sends the batch again: still one message.
	if err := b.AppendArchive(t.Context(), []sdk.ArchivedMessage{msg}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("%d messages after the repeat, want 1", n)
	}

	// With a retry in the plugin the caller never sees the lost answer.
	srv2, url2, b2 := faultyPlugin(t, map[string]any{"retries": 1, "retry_backoff": "1ms", "breaker_failures": 1000})
	setFault(t, url2, fault{Mode: faultLost, Times: 1})
	if err := b2.AppendArchive(t.Context(), []sdk.ArchivedMessage{msg}); err != nil {
		t.Errorf("append with a retry after a lost answer: %v", err)
	}
	if p, err := b2.QueryArchive(t.Context(), sdk.ArchiveQuery{Owner: owner, Max: 10}); err != nil || len(p.Messages) != 1 {
		t.Errorf("after a lost answer and a retry: %d messages, %v; want 1", len(p.Messages), err)
	}

	// A roster write is applied, its answer lost, and not sent again
	// although the plugin retries reads and appends.
	const pattern = "PUT /roster/{owner}/items/{contact}"
	setFault(t, url2, fault{Mode: faultLost, Times: 1})
	_, err := b2.SetItem(t.Context(), owner, sdk.RosterItem{JID: "romeo@example.net", Subscription: sdk.SubBoth})
	if !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("roster write whose answer was lost: %v, want sdk.ErrUnavailable", err)
	}
	if n := srv2.hitCount(pattern); n != 1 {
		t.Errorf("%d requests for a roster write, want 1 (never retried)", n)
	}
	st, err := b2.GetRoster(t.Context(), owner)
	if err != nil || len(st.Items) != 1 {
		t.Errorf("roster after the lost answer: %+v, %v; want the item applied", st.Items, err)
	}
	if srv.hitCount(pattern) != 0 {
		t.Error("the first service saw a roster write")
	}
}
