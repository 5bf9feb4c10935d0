package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	httpbackend "github.com/koi-im/koi/plugins/http"
	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/sdktest"
)

// Credentials the test services require, so that every conformance call
// also checks the plugin's token and HMAC signature.
const (
	testToken  = "t0ken"
	testSecret = "s3cret"
)

// startService runs the reference service on a fresh database.
func startService(t testing.TB, opts options) (*server, *httptest.Server) {
	t.Helper()
	st, err := openStore(filepath.Join(t.TempDir(), "rest.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	srv := newServer(st, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts
}

func signedOptions() options {
	return options{token: testToken, hmacSecret: testSecret, maxSkew: defaultSkew}
}

// pluginConfig is the http plugin's config block for a service at url.
func pluginConfig(t testing.TB, url string, extra map[string]any) []byte {
	t.Helper()
	cfg := map[string]any{
		"base_url":          url,
		"features":          []string{"auth", "roster", "archive"},
		"archive_full_text": true,
		"archive_retract":   true,
		"roster_batch":      true,
		"token":             testToken,
		"hmac_secret":       testSecret,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestConformance runs the SDK's conformance kit against the http plugin
// talking to the reference service, in process and through the plugin
// binary; each subtest gets its own service and database.
func TestConformance(t *testing.T) {
	large := 0
	if testing.Short() {
		large = 1000
	}
	sdktest.Run(t, httpbackend.New, sdktest.Options{
		NewConfig: func(t *testing.T) []byte {
			_, ts := startService(t, signedOptions())
			return pluginConfig(t, ts.URL, nil)
		},
		PluginCommand: sdktest.BuildPlugin(t, "github.com/koi-im/koi/plugins/http/cmd/koi-backend-http"),
		LargeRoster:   large,
	})
}

// TestConformanceReadOnlyAuth runs the kit's read-only auth checks: the
// service's accounts are made elsewhere, koi only checks passwords.
func TestConformanceReadOnlyAuth(t *testing.T) {
	_, ts := startService(t, signedOptions())
	b := newPluginBackend(t, pluginConfig(t, ts.URL, nil))
	if err := b.CreateUser(t.Context(), sdktest.DefaultHost, "existing", "pässword"); err != nil {
		t.Fatal(err)
	}
	sdktest.Run(t, httpbackend.New, sdktest.Options{
		Config:           pluginConfig(t, ts.URL, map[string]any{"features": []string{"auth"}, "read_only": []string{"auth"}, "archive_full_text": false, "archive_retract": false, "roster_batch": false}),
		ExistingUser:     "existing",
		ExistingPassword: "pässword",
	})
}

// newPluginBackend builds the http plugin's backend in process.
func newPluginBackend(t testing.TB, cfg []byte) *httpbackend.Backend {
	t.Helper()
	b, err := httpbackend.New(t.Context(), sdk.Config{Raw: cfg}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.(*httpbackend.Backend)
}
