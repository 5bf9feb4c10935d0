package e2e

import (
	"crypto/tls"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

// retryText matches the "retry in N s" that every refusal of the
// admission limits carries.
var retryText = regexp.MustCompile(`retry in [1-9][0-9]* s`)

// expectRetryError reads until a stream error, checks its condition and
// that its text says when to retry, and that the connection then ends.
func (r *rawClient) expectRetryError(condition string) {
	r.t.Helper()
	for {
		el, err := r.next(waitTimeout)
		if err != nil {
			r.t.Fatalf("want stream error <%s/>, got %v", condition, err)
		}
		if !el.is(nsStream, "error") {
			continue
		}
		if got := el.streamErrorCondition(); got != condition {
			r.t.Fatalf("stream error <%s/>, want <%s/>: %s", got, condition, el)
		}
		if text := el.child(nsStreams, "text"); text == nil || !retryText.MatchString(text.Text) {
			r.t.Fatalf("stream error without a retry time: %s", el)
		}
		break
	}
	r.expectClosed()
}

// waitLog waits until koi's log holds want: koi writes it as it goes, so
// it may arrive after the reply the test saw.
func (s *server) waitLog(t testing.TB, want string) {
	t.Helper()
	for end := time.Now().Add(waitTimeout); !strings.Contains(s.log.String(), want); {
		if time.Now().After(end) {
			t.Fatalf("koi's log has no %q", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConnectionRateLimit: past connections_per_ip, a plain listener
// answers a new connection with <policy-violation/> and a retry time at
// once, before any TLS; the direct TLS listener closes it without a
// handshake; another address is not affected.
func TestConnectionRateLimit(t *testing.T) {
	opt := defaultOptions()
	opt.ConnectionsPerIP = 3
	s := startServer(t, opt)
	const from = "127.0.0.71"
	for range 3 {
		r := dialRawFrom(t, from, s.c2s, nil)
		r.open("localhost")
	}
	r := dialRawFrom(t, from, s.c2s, nil)
	if _, err := r.readHeader(); err != nil {
		t.Fatalf("refused connection: want a stream header, got %v", err)
	}
	r.expectRetryError("policy-violation")

	d := net.Dialer{Timeout: waitTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", s.c2sTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tc := tls.Client(nc, s.tlsConfig(t, "localhost"))
	tc.SetDeadline(time.Now().Add(waitTimeout))
	if err := tc.Handshake(); err == nil {
		t.Fatal("direct TLS: handshake succeeded past the connection rate")
	}

	other := dialRawFrom(t, "127.0.0.72", s.c2s, nil)
	if f := other.open("localhost"); f.child(nsTLS, "starttls") == nil {
		t.Fatalf("another address: %s", f)
	}
	s.waitLog(t, `reason="connection rate"`)
}

// TestLoginRateLimit: past logins_per_ip SASL attempts (right or wrong)
// the stream ends with <policy-violation/> and a retry time.
func TestLoginRateLimit(t *testing.T) {
	opt := defaultOptions()
	opt.LoginsPerIP = 2
	s := startServer(t, opt)
	s.addUser(t, "alice@localhost", "secret")
	const from = "127.0.0.73"
	cfg := s.tlsConfig(t, "localhost")
	dialRawFrom(t, from, s.c2s, nil).login("localhost", cfg, "alice", "secret", "one")
	r := dialRawFrom(t, from, s.c2s, nil)
	r.open("localhost")
	r.startTLS("localhost", cfg)
	if el := r.auth(sasl.Plain, "alice", "wrong"); saslCondition(el) != "not-authorized" {
		t.Fatalf("wrong password: %s", el)
	}
	// The third attempt on the same stream is over the rate.
	r.send("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + b64([]byte("\x00alice\x00secret")) + "</auth>")
	r.expectRetryError("policy-violation")
	s.waitLog(t, `reason="login rate"`)
	// Another address logs in.
	dialRawFrom(t, "127.0.0.74", s.c2s, nil).login("localhost", cfg, "alice", "secret", "two")
}

// TestHandshakePoolFull: with one handshake slot and no queue, a client
// that holds the slot (it got <proceed/> and has not started TLS) makes
// the next STARTTLS get <resource-constraint/> with a retry time; once the
// first handshake is done the slot is free again.
func TestHandshakePoolFull(t *testing.T) {
	opt := defaultOptions()
	opt.HandshakeConcurrency = 1
	opt.HandshakeQueue = "0"
	s := startServer(t, opt)
	cfg := s.tlsConfig(t, "localhost")
	// The harness's probe of the direct TLS listener holds the one slot
	// until its handshake fails: wait for that.
	s.waitLog(t, "direct TLS handshake failed")

	holder := dialRaw(t, s.c2s, nil)
	holder.open("localhost")
	holder.send("<starttls xmlns='" + nsTLS + "'/>")
	if el := holder.mustNext(); !el.is(nsTLS, "proceed") {
		t.Fatalf("want <proceed/>, got %s", el)
	}

	busy := dialRaw(t, s.c2s, nil)
	busy.open("localhost")
	busy.send("<starttls xmlns='" + nsTLS + "'/>")
	busy.expectRetryError("resource-constraint")

	tc := tls.Client(holder.nc, cfg)
	tc.SetDeadline(time.Now().Add(waitTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("the slot holder's handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	holder.nc = tc
	holder.newReader()
	holder.open("localhost")

	s.addUser(t, "bob@localhost", "pw")
	dialRaw(t, s.c2s, nil).login("localhost", cfg, "bob", "pw", "r")
}
