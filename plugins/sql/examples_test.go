package sqlbackend

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/sdk"
)

// The shipped mixed example parses as a koi config, and each of its two
// plugin blocks passes this plugin's own config check.
func TestExampleMixedConfig(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "configs", "mixed-postgres-mariadb.hcl")
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("config.Load(%s): %v", path, err)
	}
	want := map[string]string{"accounts": "postgres", "data": "mariadb"}
	for name, driver := range want {
		p, ok := cfg.Plugins[name]
		if !ok {
			t.Fatalf("no plugin block %q", name)
		}
		if filepath.Base(p.Command) != "koi-backend-sql" {
			t.Errorf("plugin %s runs %s, want koi-backend-sql", name, p.Command)
		}
		raw, err := json.Marshal(p.Config)
		if err != nil {
			t.Fatal(err)
		}
		set, err := ParseConfig(sdk.Config{Raw: raw})
		if err != nil {
			t.Errorf("plugin %s: %v", name, err)
			continue
		}
		if set.Driver != driver {
			t.Errorf("plugin %s: driver %q, want %q", name, set.Driver, driver)
		}
	}
	if len(cfg.Hosts) != 1 {
		t.Fatalf("hosts %+v, want one", cfg.Hosts)
	}
	h := cfg.Hosts[0]
	if len(h.Auth) != 1 || h.Auth[0] != "accounts" || h.Roster != "data" || h.Offline != "data" || h.VCard != "data" || h.Private != "data" {
		t.Errorf("host %s: auth %v roster %q offline %q vcard %q private %q; want auth in accounts, the rest in data",
			h.Name, h.Auth, h.Roster, h.Offline, h.VCard, h.Private)
	}
}
