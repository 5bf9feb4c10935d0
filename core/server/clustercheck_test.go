package server

import (
	"strings"
	"testing"

	"github.com/koi-im/koi/core/config"
)

// In a cluster, a chat service without a muc plugin is named: its
// persistent rooms would die with the node they live on.
func TestClusterWarnings(t *testing.T) {
	parse := func(t *testing.T, host, cluster string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(`
listen "c2s" { address = "127.0.0.1:5222" }
plugin "store" {
  command = "koi-backend-sql"
  config = { driver = "postgres"  dsn = "postgres://koi@127.0.0.1/koi" }
}
host "localhost" {
  auth = "store"
`+host+`
}
`+cluster), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	const cl = `cluster { nats_url = "nats://127.0.0.1:4222"  node = "n1" }`
	w := clusterWarnings(parse(t, "", cl))
	if len(w) != 1 || w[0].Key != `host "localhost".muc` || !strings.Contains(w[0].Msg, "conference.localhost") {
		t.Fatalf("cluster without a muc plugin: %v", w)
	}
	for _, tt := range []struct{ name, host, cluster string }{
		{"muc plugin", `muc = "store"`, cl},
		{"no chat service", `muc_domain = ""`, cl},
		{"no cluster", "", ""},
	} {
		if w := clusterWarnings(parse(t, tt.host, tt.cluster)); len(w) != 0 {
			t.Errorf("%s: %v", tt.name, w)
		}
	}
}
