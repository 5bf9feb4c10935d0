package e2e

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrapeMetrics reads koi's /metrics as name{labels} → value.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: waitTimeout}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z_0-9]+(?:\{[^}]*\})?) (\S+)$`).FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			out[m[1]] = v
		}
	}
	return out
}

// Prometheus metrics from a real koi: after two logins, a wrong password
// and a message, the counters say so.
func TestMetrics(t *testing.T) {
	opt := defaultOptions()
	opt.Metrics = freeAddr(t)
	opt.AuthFailuresPerAccount = 1 // carol's wrong password locks her right one out
	s := startServer(t, opt)
	s.waitListening(t, opt.Metrics)
	url := "http://" + opt.Metrics + "/metrics"
	s.addUser(t, "alice@localhost", "alice-pw")
	s.addUser(t, "bob@localhost", "bob-pw")
	s.addUser(t, "carol@localhost", "carol-pw")

	before := scrapeMetrics(t, url)
	if before["koi_connections_open"] != 0 || before[`koi_logins_total{result="success"}`] != 0 {
		t.Errorf("before any client: %v open, %v logins", before["koi_connections_open"], before[`koi_logins_total{result="success"}`])
	}

	o := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	for _, pw := range []string{"wrong", "carol-pw"} {
		if c, err := connect(ctx, t, o, "carol@localhost/x", pw); err == nil {
			c.close()
			t.Fatalf("carol logged in with %q after a wrong password", pw)
		}
	}
	alice := login(t, o, "alice@localhost/a", "alice-pw")
	bob := login(t, o, "bob@localhost/b", "bob-pw")
	bob.send("<presence/>")
	bob.expect("own presence", isPresence("", bob.jid))
	alice.send("<message to='bob@localhost/b' type='chat'><body>counted</body></message>")
	bob.expect("alice's message", isMessageFrom(alice.jid))

	// A stanza is counted once its handling returns, which can be after
	// the recipient already has it: scrape until the counters catch up.
	wants := []struct {
		name string
		min  float64
	}{
		{"koi_connections_open", 2},
		{"koi_connections_total", 3},
		{`koi_logins_total{result="success"}`, 2},
		{`koi_logins_total{result="failure"}`, 1},
		{`koi_logins_total{result="refused"}`, 1},
		{`koi_stanzas_in_total{type="message"}`, 1},
		{`koi_stanzas_in_total{type="presence"}`, 1},
		{`koi_stanzas_out_total{type="message"}`, 1},
		{`koi_routing_seconds_count{type="message"}`, 1},
		{"go_goroutines", 1},
		{"process_resident_memory_bytes", 1},
	}
	var got map[string]float64
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(50 * time.Millisecond) {
		got = scrapeMetrics(t, url)
		short := false
		for _, c := range wants {
			short = short || got[c.name] < c.min
		}
		if !short || time.Now().After(deadline) {
			break
		}
	}
	for _, c := range wants {
		v, ok := got[c.name]
		if !ok || v < c.min {
			t.Errorf("%s = %v (present %v), want at least %v", c.name, v, ok, c.min)
		}
	}
	if _, ok := got["koi_archive_queue_depth"]; !ok {
		t.Error("no koi_archive_queue_depth")
	}
	if got[`koi_logins_total{result="failure"}`] > 1 {
		t.Errorf("%v failed logins counted, want 1", got[`koi_logins_total{result="failure"}`])
	}

	// Only the configured path answers.
	resp, err := http.Get("http://" + opt.Metrics + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %s, want 404", resp.Status)
	}

	// The plugin: its calls (logins read SCRAM keys and rosters), and a
	// restart after it is killed.
	calls := 0.0
	for k, v := range got {
		if strings.HasPrefix(k, "koi_plugin_calls_total{") && strings.Contains(k, `plugin="store"`) {
			calls += v
		}
	}
	if calls < 2 || got[`koi_plugin_call_seconds_count{plugin="store"}`] != calls {
		t.Errorf("plugin calls %v, latency observations %v", calls, got[`koi_plugin_call_seconds_count{plugin="store"}`])
	}
	pids := s.pluginPIDs(t)
	if len(pids) != 1 {
		t.Fatalf("plugin processes %v, want one", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(startTimeout)
	for scrapeMetrics(t, url)[`koi_plugin_restarts_total{plugin="store"}`] < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no restart counted %v after killing the plugin", startTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}

	alice.close()
	bob.close()
}
