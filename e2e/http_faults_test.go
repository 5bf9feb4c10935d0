package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	httpbackend "github.com/koi-im/koi/plugins/http"
)

// The http plugin under faults: koi, the plugin and the reference service
// (examples/rest-backend) as real processes, the service switched into
// each of its failure modes through PUT /_admin/fault, or stopped and
// started again. Clients must get clear, temporary XMPP errors quickly,
// koi must keep serving everything that does not need the service, no
// delivered message may be missing from the archive or stored twice, and
// the circuit breaker must open and close by itself.

// admin makes one request to the service's admin endpoints, signed as
// the service requires of every caller.
func (s *restService) admin(t *testing.T, method, path string, body []byte) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Authorization", "Bearer "+restToken)
	req.Header.Set("X-Koi-Timestamp", ts)
	req.Header.Set("X-Koi-Signature", httpbackend.Sign([]byte(restSecret), method, req.URL.RequestURI(), ts, body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode/100 != 2 {
		t.Fatalf("%s %s: status %d %s (%v)", method, path, res.StatusCode, out, err)
	}
	return out
}

// restFault is the body of PUT /_admin/fault (examples/rest-backend/faults.go).
type restFault struct {
	Mode  string `json:"mode"`
	Bytes int    `json:"bytes,omitempty"`
	Delay string `json:"delay,omitempty"`
}

func (s *restService) setFault(t *testing.T, f restFault) {
	t.Helper()
	b, _ := json.Marshal(f)
	s.admin(t, http.MethodPut, "/_admin/fault", b)
}

// requests returns how many requests reached each route of the service.
func (s *restService) requests(t *testing.T) map[string]int {
	t.Helper()
	var hits map[string]int
	if err := json.Unmarshal(s.admin(t, http.MethodGet, "/_admin/requests", nil), &hits); err != nil {
		t.Fatal(err)
	}
	return hits
}

// contractRequests counts the requests of koi's contracts, leaving out
// the test's own admin calls.
func (s *restService) contractRequests(t *testing.T) int {
	t.Helper()
	n := 0
	for pattern, c := range s.requests(t) {
		if !strings.Contains(pattern, "/_admin/") {
			n += c
		}
	}
	return n
}

// faultCases are the service's failure modes, each with what koi's log
// must say about it. The timeout is bounded by the plugin's own (300ms),
// the oversized answer by max_response_bytes (256 KiB).
var faultCases = []struct {
	fault restFault
	cause string
}{
	{restFault{Mode: "500"}, "status 500"},
	{restFault{Mode: "timeout", Delay: "20s"}, "no answer within 300ms"},
	{restFault{Mode: "malformed"}, "malformed"},
	{restFault{Mode: "oversized", Bytes: 1 << 20}, "larger than max_response_bytes"},
	{restFault{Mode: "close"}, "EOF"},
}

// faultSetup: example.test keeps accounts and rosters in the service;
// localhost its rosters and archive (accounts in SQLite); local.test
// needs nothing from the service and must not notice it failing.
var faultSetup = restSetup{
	API: `    timeout = "300ms"
    retries = 1
    retry_backoff = "20ms"
    breaker_failures = 3
    breaker_cooldown = "1s"
    max_response_bytes = 262144`,
	Hosts: `
host "localhost" {
  auth    = "store"
  roster  = "api"
  archive = "api"
  offline = "store"
}

host "example.test" {
  auth    = "api"
  roster  = "api"
  offline = "store"
}

host "local.test" {
  auth    = "store"
  roster  = "store"
  offline = "store"
}
`,
}

// faultCallLimit bounds how long a client may wait for an answer while
// the service fails: below koi's own call_timeout (5s), so the answer
// comes from the plugin's timeout, retries and breaker, not from koi
// giving up on a hung plugin.
const faultCallLimit = 4 * time.Second

// plainLogin tries a SASL PLAIN login on host and returns "success" or
// the failure's condition.
func plainLogin(t *testing.T, s *server, host, user, password string) string {
	t.Helper()
	r := dialRaw(t, s.c2s, nil)
	defer r.nc.Close()
	r.open(host)
	r.startTLS(host, s.tlsConfig(t, host))
	if el := r.auth(sasl.Plain, user, password); !el.is(nsSASL, "success") {
		return saslCondition(el)
	}
	return "success"
}

// logSince returns what koi logged after mark (a length of its log).
func logSince(s *server, mark int) string { return s.log.String()[mark:] }

// waitLogSince waits until koi's log after mark contains want.
func waitLogSince(t *testing.T, s *server, mark int, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logSince(s, mark), want) {
		if time.Now().After(deadline) {
			t.Fatalf("koi did not log %q", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAuthHealthy waits until a login to example.test, whose accounts are
// in the service, succeeds again: the fault is gone and the breaker has
// closed by itself.
func waitAuthHealthy(t *testing.T, s *server) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := plainLogin(t, s, "example.test", "romeo", "montague")
		if got == "success" {
			return
		}
		if got != "temporary-auth-failure" || time.Now().After(deadline) {
			t.Fatalf("login after the service recovered: %s", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHTTPFaultsAuthRoster(t *testing.T) {
	t.Parallel()
	s, rest := restKoi(t, faultSetup)
	s.addUser(t, "romeo@example.test", "montague")
	s.addUser(t, "juliet@example.test", "capulet")
	s.addUser(t, "nurse@local.test", "verona")
	s.addUser(t, "friar@local.test", "verona")
	s.addUser(t, "owner@localhost", "pw")
	for i := range faultCases {
		s.addUser(t, fmt.Sprintf("user%d@localhost", i), "pw")
	}
	plain := func(host string) dialOpts {
		return dialOpts{addr: s.c2s, tls: s.tlsConfig(t, host), mechs: []sasl.Mechanism{sasl.Plain}}
	}
	// Sessions that exist before the faults and need nothing from the
	// service to talk to each other.
	juliet := login(t, plain("example.test"), "juliet@example.test/balcony", "capulet")
	nurse := login(t, plain("local.test"), "nurse@local.test/kitchen", "verona")

	t.Run("auth", func(t *testing.T) {
		for _, fc := range faultCases {
			waitAuthHealthy(t, s)
			mark := len(s.log.String())
			rest.setFault(t, fc.fault)
			start := time.Now()
			if got := plainLogin(t, s, "example.test", "romeo", "montague"); got != "temporary-auth-failure" {
				t.Errorf("fault %s: login %s, want temporary-auth-failure", fc.fault.Mode, got)
			}
			if d := time.Since(start); d > faultCallLimit {
				t.Errorf("fault %s: the failed login took %v, more than %v", fc.fault.Mode, d, faultCallLimit)
			}
			// The operator learns why, from koi's log.
			waitLogSince(t, s, mark, fc.cause)
			waitLogSince(t, s, mark, "login refused")

			// Everything else keeps working: a login on a host that
			// does not use the service, and messages between sessions
			// of both hosts.
			friar := login(t, plain("local.test"), "friar@local.test/cell", "verona")
			body := "during " + fc.fault.Mode
			friar.send("<message to='nurse@local.test/kitchen' type='chat'><body>" + body + "</body></message>")
			if m := nurse.expect("message from friar", isMessageFrom("friar@local.test/cell")); m.child(nsClient, "body").Text != body {
				t.Errorf("nurse got %s", m)
			}
			nurse.send("<message to='juliet@example.test/balcony' type='chat'><body>" + body + "</body></message>")
			juliet.expect("message from nurse", isMessageFrom("nurse@local.test/kitchen"))
			friar.close()
			rest.setFault(t, restFault{})
		}
		waitAuthHealthy(t, s)
	})

	t.Run("roster", func(t *testing.T) {
		// koi reads a roster on first use and keeps it while its user
		// is online. owner's roster is read before the faults, so a set
		// goes straight to the write; each fault gets a new user whose
		// roster koi has not read yet, for the read.
		waitAuthHealthy(t, s)
		localhost := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
		owner := login(t, localhost, "owner@localhost/pc", "pw")
		if got := rosterItems(t, owner); len(got) != 0 {
			t.Fatalf("a new user's roster: %q", got)
		}
		var want []string
		for i, fc := range faultCases {
			waitAuthHealthy(t, s)
			fresh := login(t, localhost, fmt.Sprintf("user%d@localhost/pc", i), "pw")
			contact := fmt.Sprintf("friend%d@localhost", i)
			set := "<iq type='set'><query xmlns='jabber:iq:roster'><item jid='" + contact + "' name='Friend'/></query></iq>"
			before := rest.requests(t)
			rest.setFault(t, fc.fault)
			for _, q := range []struct {
				what string
				c    *client
				iq   string
			}{
				{"set", owner, set},
				{"get", fresh, "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>"},
			} {
				start := time.Now()
				r := q.c.iq(q.iq)
				typ, cond := r.stanzaError()
				if r.attr("type") != "error" || typ != "wait" || cond != "internal-server-error" {
					t.Errorf("fault %s: roster %s answered %s, want a wait internal-server-error", fc.fault.Mode, q.what, r)
				}
				if d := time.Since(start); d > faultCallLimit {
					t.Errorf("fault %s: roster %s took %v, more than %v", fc.fault.Mode, q.what, d, faultCallLimit)
				}
			}
			after := rest.requests(t)
			// The write went once (never retried: the service may have
			// applied it), the read twice (retries = 1). The breaker
			// opens at the third failure, after both.
			if n := after["PUT /roster/{owner}/items/{contact}"] - before["PUT /roster/{owner}/items/{contact}"]; n != 1 {
				t.Errorf("fault %s: the roster write reached the service %d times, want 1", fc.fault.Mode, n)
			}
			// An oversized answer would be the same again: not retried.
			wantReads := 2
			if fc.fault.Mode == "oversized" {
				wantReads = 1
			}
			if n := after["GET /roster/{owner}"] - before["GET /roster/{owner}"]; n != wantReads {
				t.Errorf("fault %s: the roster read reached the service %d times, want %d", fc.fault.Mode, n, wantReads)
			}

			rest.setFault(t, restFault{})
			waitAuthHealthy(t, s)
			if got := rosterItems(t, fresh); len(got) != 0 {
				t.Errorf("fault %s: the new user's roster after recovery: %q", fc.fault.Mode, got)
			}
			if r := owner.iq(set); r.attr("type") != "result" {
				t.Errorf("fault %s: roster set after recovery: %s", fc.fault.Mode, r)
			}
			want = append(want, contact+"|Friend|none|")
			fresh.close()
		}
		// What koi holds for the online owner is what the service
		// stored (a write whose answer was lost may have been applied
		// there: each was repeated after the recovery).
		if got := rosterItems(t, owner); !slices.Equal(got, want) {
			t.Errorf("roster held by koi: %q, want %q", got, want)
		}
		owner.close()
		owner = login(t, localhost, "owner@localhost/phone", "pw")
		if got := rosterItems(t, owner); !slices.Equal(got, want) {
			t.Errorf("roster read again from the service: %q, want %q", got, want)
		}
	})

	t.Run("breaker", func(t *testing.T) {
		waitAuthHealthy(t, s)
		mark := len(s.log.String())
		rest.setFault(t, restFault{Mode: "500"})
		// Two logins, two attempts each: the breaker opens at the third
		// failure in a row.
		for range 2 {
			if got := plainLogin(t, s, "example.test", "romeo", "montague"); got != "temporary-auth-failure" {
				t.Fatalf("login with the service failing: %s", got)
			}
		}
		waitLogSince(t, s, mark, "to=open")

		// While it is open, logins fail without a request to the
		// service. After each cool-down one probe goes through (and
		// fails, opening the breaker again): every request the service
		// sees from now on is such a probe, whatever the timing.
		halfOpen := func() int { return strings.Count(logSince(s, mark), "to=half-open") }
		reqs, probes := rest.contractRequests(t), halfOpen()
		const attempts = 10
		for range attempts {
			if got := plainLogin(t, s, "example.test", "romeo", "montague"); got != "temporary-auth-failure" {
				t.Fatalf("login with the breaker open: %s", got)
			}
		}
		gotReqs, gotProbes := rest.contractRequests(t)-reqs, halfOpen()-probes
		if gotReqs != gotProbes {
			t.Errorf("%d requests reached the service during %d logins with the breaker open, want %d (one per probe)", gotReqs, attempts, gotProbes)
		}
		if gotReqs >= attempts {
			t.Errorf("every login reached the service: the breaker does not fail fast")
		}
		if !strings.Contains(logSince(s, mark), "circuit breaker open") {
			t.Error("koi's log does not say the breaker is open")
		}

		// The service recovers: the breaker closes by itself.
		rest.setFault(t, restFault{})
		waitAuthHealthy(t, s)
		waitLogSince(t, s, mark, "to=closed")
	})

	// koi is still there for everyone.
	nurse.iq("<iq type='get' to='local.test'><ping xmlns='urn:xmpp:ping'/></iq>")
	juliet.iq("<iq type='get' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>")
}

// TestHTTPFaultsArchive sends messages between two online users while the
// archive service fails in each way, and while it is stopped and started
// again on the same address and database: every delivered message must
// end up in both archives, once.
func TestHTTPFaultsArchive(t *testing.T) {
	t.Parallel()
	s, rest := restKoi(t, faultSetup)
	const pw = "archive-pw"
	s.addUser(t, "alice@localhost", pw)
	s.addUser(t, "bob@localhost", pw)
	o := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	bob := login(t, o, "bob@localhost/phone", pw)
	alice.online()
	bob.online()

	const perPhase = 40
	sent := 0
	var ids []string // bob's stanza ids of what he received, in order
	burst := func() {
		t.Helper()
		for range perPhase {
			alice.blast(fmt.Sprintf("<message to='bob@localhost' type='chat'><body>%d</body></message>", sent))
			sent++
		}
		_, got := bob.receivedWithin("alice@localhost/pc", perPhase, 30*time.Second)
		ids = append(ids, got...)
	}
	// count asks bob's archive how many messages it holds. A query waits
	// for bob's pending writes; while the breaker is still open it fails,
	// and is asked again.
	query := func(c *client, set string) mamPage {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			p := c.mamWithin(30*time.Second, set)
			if p.reply.attr("type") == "result" {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("archive queries still fail: %s", p.reply)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	count := func(c *client) int {
		t.Helper()
		p := query(c, "<max>0</max>")
		n, err := strconv.Atoi(p.rsm("count"))
		if err != nil {
			t.Fatalf("no count in %s", p.fin)
		}
		return n
	}

	burst()
	faults := append(slices.Clone(faultCases), struct {
		fault restFault
		cause string
	}{restFault{Mode: "lost"}, "EOF"})
	for _, fc := range faults {
		mark := len(s.log.String())
		before := rest.requests(t)["POST /archive/messages"]
		rest.setFault(t, fc.fault)
		burst()
		// Messages are delivered while the archive fails; the writer
		// keeps them (in its journal) and says why.
		waitLogSince(t, s, mark, "archive backend unreachable")
		waitLogSince(t, s, mark, fc.cause)
		rest.setFault(t, restFault{})
		if n := count(bob); n != sent {
			t.Fatalf("after fault %s: bob's archive holds %d messages, %d were delivered", fc.fault.Mode, n, sent)
		}
		if rest.requests(t)["POST /archive/messages"] == before {
			t.Errorf("fault %s: no append reached the service", fc.fault.Mode)
		}
	}

	// The service vanishes (its process ends) and comes back on the same
	// address and database.
	mark := len(s.log.String())
	rest.stop()
	burst()
	waitLogSince(t, s, mark, "connection refused")
	rest.start(t)
	burst()

	if n := count(alice); n != sent {
		t.Errorf("alice's archive holds %d messages, she sent %d", n, sent)
	}
	var got []string
	for {
		set := "<max>100</max>"
		if len(got) > 0 {
			set += "<after>" + got[len(got)-1] + "</after>"
		}
		page := query(bob, set)
		got = append(got, page.ids...)
		if page.complete() {
			break
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("bob's archive has %d messages, he received %d: they must be the same, once each, in order", len(got), len(ids))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := alice.iqCtx(ctx, "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		t.Errorf("koi stopped answering: %v", err)
	}
}
