package sqlbackend

import (
	"encoding/json"
	"testing"

	"github.com/koi-im/koi/sdk/sdktest"
)

// TestConformance runs the SDK's conformance kit against the store, in
// process and through the koi-backend-sql plugin binary, on every database
// that answers (see tryTestSettings): each subtest of the kit gets a fresh
// SQLite file, PostgreSQL schema or MariaDB database. With -short the large
// roster has 1,000 items instead of 10,000.
func TestConformance(t *testing.T) {
	large := 0 // the kit's default
	if testing.Short() {
		large = 1000
	}
	plugin := sdktest.BuildPlugin(t, "github.com/koi-im/koi/plugins/sql/cmd/koi-backend-sql")
	for _, driver := range testDrivers() {
		t.Run(driver, func(t *testing.T) {
			if _, skip := tryTestSettings(t, driver); skip != "" {
				t.Skip(skip)
			}
			sdktest.Run(t, New, sdktest.Options{
				NewConfig:     func(t *testing.T) []byte { return conformanceConfig(t, driver) },
				PluginCommand: plugin,
				LargeRoster:   large,
			})
		})
	}
}

// conformanceConfig is the plugin's config block for a fresh database.
func conformanceConfig(t *testing.T, driver string) []byte {
	t.Helper()
	set, skip := tryTestSettings(t, driver)
	if skip != "" {
		t.Fatal(skip)
	}
	cfg := map[string]any{"driver": set.Driver, "dsn": set.DSN}
	if set.Schema != "" {
		cfg["schema"] = set.Schema
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
