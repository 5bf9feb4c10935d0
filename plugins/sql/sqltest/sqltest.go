// Package sqltest gives tests of the packages that use the sql plugin's
// store in process (the core's feature modules) a store of their own.
package sqltest

import (
	"context"
	"path/filepath"
	"testing"

	sqlbackend "github.com/koi-im/koi/plugins/sql"
)

// SQLite opens the store on a new SQLite database in tb's temporary
// directory, with the schema in place; it is closed when tb ends.
func SQLite(tb testing.TB) *sqlbackend.Store {
	tb.Helper()
	st, err := sqlbackend.Open(context.Background(), sqlbackend.Settings{
		Driver: "sqlite", DSN: filepath.Join(tb.TempDir(), "koi.db"), SCRAMIterations: 4096,
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}
