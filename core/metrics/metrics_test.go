package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
