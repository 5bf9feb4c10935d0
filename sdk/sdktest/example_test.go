package sdktest_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/koi-im/koi/sdk/internal/testbackend"
	"github.com/koi-im/koi/sdk/sdktest"
)

// A plugin calls the kit from its own tests, as
// func TestConformance(t *testing.T) in its package's _test.go file, with
// its sdk.Factory and the import path of its main package. Here those are
// the SDK's in-memory test backend; in a plugin, mybackend.New and
// "example.com/mybackend/cmd/koi-backend-mine".
func ExampleRun() {
	testConformance := func(t *testing.T) {
		sdktest.Run(t, testbackend.New, sdktest.Options{
			// A fresh, empty store for every subtest: a database file
			// in the subtest's own directory, say.
			NewConfig: func(t *testing.T) []byte {
				cfg, err := json.Marshal(map[string]any{
					"close_marker": filepath.Join(t.TempDir(), "closed"),
				})
				if err != nil {
					t.Fatal(err)
				}
				return cfg
			},
			// Also run every check through the plugin binary.
			PluginCommand: sdktest.BuildPlugin(t, "github.com/koi-im/koi/sdk/internal/testbackend/cmd"),
		})
	}
	_ = testConformance
}
