package sqlbackend

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/koi-im/koi/core/pluginhost"
	"github.com/koi-im/koi/sdk"
)

// buildPluginBinary builds koi-backend-sql into a temporary directory.
func buildPluginBinary(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "koi-backend-sql")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/koi-backend-sql").CombinedOutput()
	if err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// pluginConfig is the plugin block's config for set.
func pluginConfig(set Settings) map[string]any {
	cfg := map[string]any{"driver": set.Driver, "dsn": set.DSN}
	if set.Schema != "" {
		cfg["schema"] = set.Schema
	}
	return cfg
}

// BenchmarkGetRoster1000 measures the roster load of a login: GetRoster of
// 1,000 items, each in two groups, through the plugin process (gRPC) as
// koi calls it, on each database. It reports the median and 99th
// percentile latency.
func BenchmarkGetRoster1000(b *testing.B) {
	plugin := buildPluginBinary(b)
	for _, driver := range testDrivers() {
		b.Run(driver, func(b *testing.B) {
			set := testSettings(b, driver)
			const owner = "ann@example.org"
			s := openOn(b, set)
			ctx := context.Background()
			for i := range 1000 {
				it := sdk.RosterItem{JID: fmt.Sprintf("contact%04d@example.org", i), Name: fmt.Sprintf("Contact %d", i),
					Subscription: sdk.SubBoth, Groups: []string{"Friends", fmt.Sprintf("G%d", i%10)}}
				if _, err := s.SetItem(ctx, owner, it); err != nil {
					b.Fatal(err)
				}
			}
			s.Close()

			ph := pluginhost.New(nil, []pluginhost.Spec{{Name: "sql", Command: plugin, Config: pluginConfig(set)}})
			if err := ph.Start(ctx); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ph.Close(cctx)
			})
			be, _ := ph.Backend("sql")
			load := func() time.Duration {
				start := time.Now()
				st, err := be.GetRoster(ctx, owner)
				if err != nil || len(st.Items) != 1000 {
					b.Fatalf("GetRoster: %d items, %v", len(st.Items), err)
				}
				return time.Since(start)
			}
			for range 5 { // connections and prepared statements
				load()
			}
			var lat []time.Duration
			for b.Loop() {
				lat = append(lat, load())
			}
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
		})
	}
}
