package server

import (
	"strings"
	"testing"

	"github.com/koi-im/koi/core/config"
)

// An upload service with plain http URLs is accepted with a warning.
func TestUploadWarnings(t *testing.T) {
	cfg, err := config.Parse([]byte(`
listen "c2s" { address = "127.0.0.1:5222" }
plugin "store" { command = "x" }
host "a.example" { auth = "store"  upload { listen = "127.0.0.1:5281" } }
host "b.example" { auth = "store"  upload { listen = "127.0.0.1:5282"  tls = false } }
host "c.example" { auth = "store"  upload { listen = "127.0.0.1:5283"  tls = false  url_base = "https://files.c.example" } }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := uploadWarnings(cfg)
	if len(w) != 1 || w[0].Key != `host "b.example".upload.url_base` || !strings.Contains(w[0].Msg, "http://upload.b.example:5282 is plain http") {
		t.Fatalf("warnings: %v", w)
	}
	if got := uploadDomains(cfg); strings.Join(got, " ") != "upload.a.example upload.b.example upload.c.example" {
		t.Fatalf("domains for the certificate: %v", got)
	}
}
