package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return string(b)
}

func TestCounts(t *testing.T) {
	r := New()
	r.ConnOpened()
	r.ConnOpened()
	r.ConnClosed()
	r.Login("success")
	r.Login("failure")
	r.Login("failure")
	r.StanzaIn("message", time.Millisecond)
	r.StanzaIn("presence", time.Millisecond)
	r.StanzaIn("open", time.Millisecond)
	r.StanzaOut("message")
	r.StanzaOut("message")
	r.PluginCall("store", "GetRoster", time.Millisecond, nil)
	r.PluginCall("store", "GetRoster", time.Millisecond, errors.New("down"))
	r.PluginRestarted("store")
	if err := r.GaugeFunc("koi_test_depth", "A test gauge.", func() float64 { return 7 }); err != nil {
		t.Fatal(err)
	}
	out := scrape(t, r)
	for _, want := range []string{
		"koi_connections_open 1\n",
		"koi_connections_total 2\n",
		`koi_logins_total{result="success"} 1` + "\n",
		`koi_logins_total{result="failure"} 2` + "\n",
		`koi_logins_total{result="refused"} 0` + "\n",
		`koi_stanzas_in_total{type="message"} 1` + "\n",
		`koi_stanzas_in_total{type="other"} 1` + "\n",
		`koi_stanzas_out_total{type="message"} 2` + "\n",
		`koi_stanzas_out_total{type="iq"} 0` + "\n",
		`koi_routing_seconds_count{type="presence"} 1` + "\n",
		"koi_test_depth 7\n",
		`koi_plugin_calls_total{method="GetRoster",plugin="store"} 2` + "\n",
		`koi_plugin_errors_total{method="GetRoster",plugin="store"} 1` + "\n",
		`koi_plugin_call_seconds_count{plugin="store"} 2` + "\n",
		`koi_plugin_restarts_total{plugin="store"} 1` + "\n",
		"go_goroutines ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the scrape", want)
		}
	}
	if err := r.GaugeFunc("koi_test_depth", "again", func() float64 { return 0 }); err == nil {
		t.Error("a second gauge of the same name was accepted")
	}
}

// Counters reads the same values the scrape shows, while the hot path
// keeps counting from other goroutines.
func TestCounters(t *testing.T) {
	r := New()
	if c := r.Counters(); c.ConnectionsOpen != 0 || c.Logins["success"] != 0 || len(c.StanzasIn) != 4 || len(c.Logins) != 3 {
		t.Fatalf("fresh registry: %+v", c)
	}
	r.ConnOpened()
	r.ConnOpened()
	r.ConnOpened()
	r.ConnClosed()
	r.Login("success")
	r.Login("refused")
	r.Login("weird") // counted as a failure
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 250 {
				r.StanzaIn("message", time.Microsecond)
				r.StanzaOut("presence")
				r.Counters()
			}
		})
	}
	wg.Wait()
	r.StanzaIn("stream:features", time.Microsecond)
	c := r.Counters()
	if c.ConnectionsOpen != 2 || c.ConnectionsTotal != 3 {
		t.Errorf("connections: open %d, total %d", c.ConnectionsOpen, c.ConnectionsTotal)
	}
	if c.Logins["success"] != 1 || c.Logins["failure"] != 1 || c.Logins["refused"] != 1 {
		t.Errorf("logins %v", c.Logins)
	}
	if c.StanzasIn["message"] != 1000 || c.StanzasIn["other"] != 1 || c.StanzasIn["iq"] != 0 || c.StanzasOut["presence"] != 1000 {
		t.Errorf("stanzas in %v, out %v", c.StanzasIn, c.StanzasOut)
	}
	out := scrape(t, r)
	for _, want := range []string{`koi_stanzas_in_total{type="message"} 1000`, `koi_stanzas_out_total{type="presence"} 1000`, "koi_connections_total 3"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("the scrape disagrees: no %q", want)
		}
	}
}

// The cost of one read of the counters, as the web admin page polls them.
func BenchmarkCounters(b *testing.B) {
	r := New()
	b.ReportAllocs()
	for b.Loop() {
		r.Counters()
	}
}

// The per-stanza cost as c2s pays it: the clock read around the handler,
// one stanza in and one out. go test -bench . ./core/metrics
func BenchmarkStanza(b *testing.B) {
	r := New()
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		r.StanzaIn("message", time.Since(start))
		r.StanzaOut("message")
	}
}
