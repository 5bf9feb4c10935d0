package mongobackend

import (
	"encoding/json"
	"testing"

	"github.com/koi-im/koi/plugins/mongo/mongotest"
	"github.com/koi-im/koi/sdk/sdktest"
)

// TestConformance runs the SDK's conformance kit against the store, in
// process and through the koi-backend-mongo plugin binary, on one FerretDB
// (or KOI_TEST_MONGO_URI) with a database of its own for every subtest.
// Full-text search is on, so the archive search is checked too (through
// the regular-expression fallback on FerretDB).
func TestConformance(t *testing.T) {
	srv := mongotest.Start(t)
	large := 0 // the kit's default, 10,000 items
	switch {
	case testing.Short():
		large = 1000
	case !srv.Real:
		// Every FerretDB 1.x write but an insert reads the whole
		// collection (no filter pushdown on SQLite), so the 10,000-item
		// roster alone would take a minute; 2,000 keep the check.
		large = 2000
	}
	plugin := sdktest.BuildPlugin(t, "github.com/koi-im/koi/plugins/mongo/cmd/koi-backend-mongo")
	n := 0
	sdktest.Run(t, New, sdktest.Options{
		NewConfig: func(t *testing.T) []byte {
			n++
			raw, err := json.Marshal(map[string]any{
				"uri": srv.URI, "database": srv.Database + "_" + itoa(n), "fulltext": true,
			})
			if err != nil {
				t.Fatal(err)
			}
			return raw
		},
		PluginCommand: plugin,
		LargeRoster:   large,
	})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
