package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Every series the Grafana dashboard in examples/grafana queries is one
// this registry exports, so that a renamed metric cannot leave an empty
// panel behind.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../examples/grafana/koi-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	r := New()
	// One of each, so the vectors have series to show.
	r.Login("success")
	r.StanzaIn("message", time.Millisecond)
	r.StanzaOut("message")
	r.PluginCall("store", "GetRoster", time.Millisecond, nil)
	r.PluginCall("store", "GetRoster", time.Millisecond, os.ErrClosed)
	r.PluginRestarted("store")
	if err := r.GaugeFunc("koi_archive_queue_depth", "test", func() float64 { return 0 }); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, r)
	names := regexp.MustCompile(`\b((?:koi|go|process)_[a-z_]+)\{`)
	n := 0
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range names.FindAllStringSubmatch(tg.Expr, -1) {
				n++
				if !strings.Contains(out, "\n"+m[1]+"{") && !strings.Contains(out, "\n"+m[1]+" ") {
					t.Errorf("panel %q queries %s, which koi does not export", p.Title, m[1])
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d metric references found in the dashboard", n)
	}
}
