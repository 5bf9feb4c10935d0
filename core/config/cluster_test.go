package config

import (
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/cluster"
)

func TestCluster(t *testing.T) {
	base := `listen "c2s" { address = "127.0.0.1:5222" }
plugin "store" { command = "x"  config = { driver = "postgres" } }
host "a.example" { auth = "store" }
`
	c, err := Parse([]byte(base+`cluster { nats_url = "nats://127.0.0.1:4222"  node = "n1" }`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Cluster{NATSURL: "nats://127.0.0.1:4222", Node: "n1", Lease: 10 * time.Second, Name: "koi", OutboxMaxSize: 64 << 20}); c.Cluster != want {
		t.Fatalf("cluster = %+v, want %+v", c.Cluster, want)
	}
	c, err = Parse([]byte(base+`cluster { nats_url = "nats://127.0.0.1:4222"  node = "n1"  outbox_max_size = 8388608 }`), nil)
	if err != nil || c.Cluster.OutboxMaxSize != 8<<20 {
		t.Fatalf("outbox_max_size = 8388608: %d, %v", c.Cluster.OutboxMaxSize, err)
	}
	if c, err := Parse([]byte(base), nil); err != nil || c.Cluster.On() {
		t.Fatalf("no cluster block: %+v, %v", c.Cluster, err)
	}
	for _, tc := range []struct{ src, key string }{
		{`cluster { nats_url = "http://x:4222" }`, "cluster.nats_url"},
		{`cluster { nats_url = "nats://x:4222"  node = "a.b" }`, "cluster.node"},
		{`cluster { nats_url = "nats://x:4222"  node = "a"  name = "x y" }`, "cluster.name"},
		{`cluster { nats_url = "nats://x:4222"  node = "a"  lease = "10ms" }`, "cluster.lease"},
		{`cluster { nats_url = "nats://x:4222"  node = "a"  outbox_max_size = 1000 }`, "cluster.outbox_max_size"},
		{`cluster { nats_url = "nats://x:4222"  node = "a"  outbox_max_size = 0 }`, "cluster.outbox_max_size"},
		{`cluster { nats_url = "nats://x:4222"  node = "a" }
plugin "local" { command = "x"  config = { driver = "sqlite" } }`, `plugin "local".config.driver`},
		{`cluster { nats_url = "nats://x:4222"  node = "a" }
host "b.example" { auth = "store"  upload { listen = "127.0.0.1:5281" } }`, `host "b.example".upload.store.type`},
	} {
		_, err := Parse([]byte(base+tc.src), nil)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %s", tc.src, err, tc.key)
		}
	}
}

// The config's default is the cluster's: the bound an operator gets by
// leaving the key out is the one the cluster package documents.
func TestOutboxMaxSizeDefault(t *testing.T) {
	if defaultOutboxMaxSize != cluster.DefaultOutboxMax {
		t.Fatalf("cluster.outbox_max_size defaults to %d, cluster.DefaultOutboxMax is %d", defaultOutboxMaxSize, cluster.DefaultOutboxMax)
	}
}
