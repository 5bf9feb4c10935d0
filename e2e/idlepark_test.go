package e2e

import (
	"fmt"
	"testing"
	"time"
)

// waitMetric polls /metrics until name has the value want.
func waitMetric(t *testing.T, url, name string, want float64) {
	t.Helper()
	waitMetricTo(t, url, name, fmt.Sprint(want), func(v float64) bool { return v == want })
}

// waitMetricAtLeast waits until koi's metric name reaches want.
func waitMetricAtLeast(t *testing.T, url, name string, want float64) {
	t.Helper()
	waitMetricTo(t, url, name, fmt.Sprint("at least ", want), func(v float64) bool { return v >= want })
}

func waitMetricTo(t *testing.T, url, name, want string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := scrapeMetrics(t, url)[name]
		if ok(got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %s", name, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIdleSessionsPark: sessions quiet for a second give up their
// goroutines (koi_c2s_parked_sessions counts them) and lose nothing by
// it: a parked session receives messages, is woken by its client's next
// stanza, over STARTTLS and direct TLS, and parks again; a parked session
// is replaced (conflict), ends when its client goes and when its idle
// timeout passes.
func TestIdleSessionsPark(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.Metrics = freeAddr(t)
	opt.IdleTimeout = "6s"
	srv := startServer(t, opt)
	srv.waitListening(t, opt.Metrics)
	url := "http://" + opt.Metrics + "/metrics"
	const pw = "pw-park"
	cfg := srv.tlsConfig(t, "localhost")
	const n = 6
	clients := make([]*rawClient, n)
	for i := range clients {
		user := fmt.Sprintf("parker%d", i)
		srv.addUser(t, user+"@localhost", pw)
		if i%2 == 0 {
			clients[i] = dialRaw(t, srv.c2s, nil)
			clients[i].login("localhost", cfg, user, pw, "r")
		} else {
			clients[i] = dialRaw(t, srv.c2sTLS, cfg)
			clients[i].loginDirect("localhost", user, pw, "r")
		}
		// A whitespace keepalive keeps the ones logged in from their idle
		// timeout while the rest log in: under the race detector six
		// logins can take longer than the timeout.
		for _, c := range clients[:i] {
			c.send(" ")
		}
	}
	waitMetric(t, url, "koi_c2s_parked_sessions", n)

	// Each parked session sends (its stanza wakes it) to the next one,
	// which is parked too until it answers.
	for round := range 2 {
		for i, c := range clients {
			to := fmt.Sprintf("parker%d@localhost/r", (i+1)%n)
			c.send(fmt.Sprintf("<message to='%s' id='m%d-%d' type='chat'><body>hi %d</body></message>", to, round, i, i))
		}
		for i, c := range clients {
			from := (i + n - 1) % n
			el, err := c.next(waitTimeout)
			if err != nil {
				t.Fatalf("round %d: parker%d waiting for the message of parker%d: %v", round, i, from, err)
			}
			if want := fmt.Sprintf("m%d-%d", round, from); el.attr("id") != want || el.attr("from") != fmt.Sprintf("parker%d@localhost/r", from) {
				t.Fatalf("round %d: parker%d got %s, want message %s", round, i, el, want)
			}
			c.send(fmt.Sprintf("<iq type='get' id='ping%d-%d' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", round, i))
			if el, err := c.next(waitTimeout); err != nil || el.attr("id") != fmt.Sprintf("ping%d-%d", round, i) {
				t.Fatalf("round %d: parker%d's ping: %v %v", round, i, el, err)
			}
		}
		waitMetric(t, url, "koi_c2s_parked_sessions", n)
	}

	// A new login for the same resource replaces a parked session.
	again := dialRaw(t, srv.c2s, nil)
	again.login("localhost", cfg, "parker0", pw, "r")
	clients[0].expectStreamError("conflict")
	// A client that goes away ends its parked session.
	clients[1].nc.Close()
	// The rest are parked (as is the new parker0) until their idle
	// timeout (6 s) ends them.
	start := time.Now()
	for _, c := range append(clients[2:], again) {
		c.expectStreamErrorWithin("connection-timeout", 15*time.Second)
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("idle timeout after %v, want about 6 s", took)
	}
	waitMetric(t, url, "koi_c2s_parked_sessions", 0)
	waitMetric(t, url, "koi_connections_open", 0)
}

// loginDirect is login on a direct TLS connection (no STARTTLS).
func (r *rawClient) loginDirect(domain, user, password, resource string) {
	r.t.Helper()
	r.open(domain)
	r.loginAfterTLS(domain, user, password, resource)
}

// expectStreamErrorWithin is expectStreamError with a longer wait for the
// error (one that comes from a timer, say).
func (r *rawClient) expectStreamErrorWithin(condition string, wait time.Duration) {
	r.t.Helper()
	el, err := r.next(wait)
	if err != nil {
		r.t.Fatalf("want stream error <%s/>, got %v", condition, err)
	}
	if !el.is(nsStream, "error") || el.streamErrorCondition() != condition {
		r.t.Fatalf("want stream error <%s/>, got %s", condition, el)
	}
	r.expectClosed()
}
