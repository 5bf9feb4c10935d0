package httpbackend

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

// newTestBackend starts h as the service and returns a backend calling it,
// configured with cfg on top of base_url and features.
func newTestBackend(t *testing.T, h http.Handler, cfg map[string]any) *Backend {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	full := map[string]any{"base_url": ts.URL, "features": []string{"auth", "roster", "archive"}}
	for k, v := range cfg {
		full[k] = v
	}
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(t.Context(), sdk.Config{Raw: raw}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.(*Backend)
}
