package httpbackend

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

func emptyRoster(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, `{"version": "1", "items": [], "pending": []}`)
}

func backendFor(t *testing.T, cfg map[string]any) (*Backend, error) {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(t.Context(), sdk.Config{Raw: raw}, hclog.NewNullLogger())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { b.Close() })
	return b.(*Backend), nil
}

// TestCAFile: an https service whose certificate only ca_file vouches
// for is reached with it and refused without it; a ca_file that is not
// PEM is a config error naming the key.
func TestCAFile(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(emptyRoster))
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"base_url": ts.URL, "features": []string{"roster"}, "retries": 0}

	cfg["ca_file"] = ca
	b, err := backendFor(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetRoster(t.Context(), "a@b"); err != nil {
		t.Errorf("GetRoster over TLS with ca_file: %v", err)
	}

	delete(cfg, "ca_file")
	b, err = backendFor(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetRoster(t.Context(), "a@b"); !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("GetRoster over TLS without ca_file: %v, want a certificate error wrapping sdk.ErrUnavailable", err)
	}

	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	cfg["ca_file"] = bad
	if _, err := backendFor(t, cfg); !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("a ca_file without PEM: %v, want sdk.ErrInvalid naming ca_file", err)
	}
	cfg["ca_file"] = filepath.Join(dir, "missing.pem")
	if _, err := backendFor(t, cfg); !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("a missing ca_file: %v, want sdk.ErrInvalid naming ca_file", err)
	}
}

// TestBasicAuth: basic_auth is sent as HTTP Basic credentials.
func TestBasicAuth(t *testing.T) {
	var user, pass string
	var ok bool
	b := newTestBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok = r.BasicAuth()
		emptyRoster(w, r)
	}), map[string]any{"basic_auth": "koi:s3cret:with:colons"})
	if _, err := b.GetRoster(t.Context(), "a@b"); err != nil {
		t.Fatal(err)
	}
	if !ok || user != "koi" || pass != "s3cret:with:colons" {
		t.Errorf("basic credentials %q %q (%v), want koi and s3cret:with:colons", user, pass, ok)
	}
}

// TestConnectionReuse: calls share connections to the service, one after
// another and from many goroutines at once, instead of one per call.
func TestConnectionReuse(t *testing.T) {
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(emptyRoster))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	b, err := backendFor(t, map[string]any{"base_url": ts.URL, "features": []string{"roster"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := b.GetRoster(t.Context(), "a@b"); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 50 calls in a row, want 1", n)
	}
	// 8 goroutines at a time: about 8 more connections, kept for the
	// next rounds. net/http may finish a dial it started for a call that
	// a released connection then served, and keep that one too: so not
	// exactly 8, but nowhere near the 30 or so of the default transport,
	// which keeps only 2 idle and dials 6 a round.
	const workers = 8
	for range 5 {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				if _, err := b.GetRoster(t.Context(), "a@b"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if n := conns.Load(); n > 1+2*workers {
		t.Errorf("%d connections for 5 rounds of %d concurrent calls, want at most %d", n, workers, 1+2*workers)
	}
}
