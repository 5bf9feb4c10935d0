package e2e

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

// TestBadInput sends what a conforming client never sends and checks the
// error koi answers with (RFC 6120 §4.9.3, §8.3.3).
func TestBadInput(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.MaxStanzaSize = 8192
	srv := startServer(t, opt)
	const pw = "pw-bad"
	srv.addUser(t, "mallory@localhost", pw)
	tlsCfg := srv.tlsConfig(t, "localhost")

	// Stream errors inside an authenticated session.
	for _, tc := range []struct {
		name, input, condition string
	}{
		{"not well-formed", "<message to='bob@localhost'><body>hi</message>", "not-well-formed"},
		{"bad attribute", "<message to='bob@localhost' to='x'><body>hi</body></message>", "not-well-formed"},
		{"oversized stanza", "<message to='bob@localhost'><body>" + strings.Repeat("a", 9000) + "</body></message>", "policy-violation"},
		{"DTD", "<!DOCTYPE message [<!ELEMENT message ANY>]>", "restricted-xml"},
		{"entity declaration", "<!ENTITY boom 'boom'>", "restricted-xml"},
		{"processing instruction", "<?evil instruction?>", "restricted-xml"},
		{"processing instruction in a stanza", "<message to='bob@localhost'><?evil instruction?><body>hi</body></message>", "restricted-xml"},
		{"comment", "<!-- hidden -->", "restricted-xml"},
		{"undefined entity", "<message to='bob@localhost'><body>&boom;</body></message>", "not-well-formed"},
		{"too deep", "<message to='bob@localhost'>" + strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100) + "</message>", "policy-violation"},
		{"spoofed from", "<message from='bob@localhost/x' to='mallory@localhost'><body>it is me</body></message>", "invalid-from"},
		{"from another resource of the same account", "<message from='mallory@localhost/other' to='mallory@localhost'><body>it is me</body></message>", "invalid-from"},
		{"unknown top-level element", "<hello xmlns='urn:example:hello'/>", "unsupported-stanza-type"},
		{"text at stream level", "hello<presence/>", "bad-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, srv.c2s, nil)
			r.login("localhost", tlsCfg, "mallory", pw, "raw")
			r.send(tc.input)
			r.expectStreamError(tc.condition)
		})
	}

	// Far over the limit, most of the stanza is still unread when koi
	// closes: the stream error must reach the client anyway, not be
	// destroyed by a reset.
	for _, size := range []int{64 << 10, 1 << 20} {
		t.Run(fmt.Sprintf("stanza of %d bytes", size), func(t *testing.T) {
			r := dialRaw(t, srv.c2s, nil)
			r.login("localhost", tlsCfg, "mallory", pw, "huge")
			// A naive client writes it all before it reads. koi stops
			// parsing at the limit but must take (and drop) the rest for a
			// moment, or the write fails and the error is lost.
			r.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
			if _, err := io.WriteString(r.nc, "<message to='bob@localhost'><body>"+strings.Repeat("a", size)+"</body></message>"); err != nil {
				t.Fatalf("writing the stanza: %v", err)
			}
			r.expectStreamError("policy-violation")
		})
	}

	// Not XMPP at all: answered with a stream error at once, not held
	// until a timeout.
	t.Run("HTTP request on the XMPP port", func(t *testing.T) {
		r := dialRaw(t, srv.c2s, nil)
		r.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if _, err := r.readHeader(); err != nil {
			t.Fatalf("server stream header: %v", err)
		}
		r.expectStreamError("not-well-formed")
	})

	t.Run("stanza under the limit", func(t *testing.T) {
		c := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "mallory@localhost/big", pw)
		body := strings.Repeat("b", 7000)
		c.send("<message to='mallory@localhost/big'><body>" + body + "</body></message>")
		if m := c.expect("the big message", isMessageFrom("mallory@localhost/big")); m.path("body").Text != body {
			t.Errorf("body of %d bytes came back as %d bytes", len(body), len(m.path("body").Text))
		}
	})

	// Stream errors on the stream header.
	for _, tc := range []struct {
		name, header, condition string
	}{
		{"wrong stream namespace",
			"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='urn:example:not-streams' to='localhost' version='1.0'>",
			"invalid-namespace"},
		{"wrong content namespace",
			"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
			"invalid-namespace"},
		{"unknown host", header("unknown.example"), "host-unknown"},
		{"unsupported version",
			"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='2.0'>",
			"unsupported-version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, srv.c2s, nil)
			r.send(tc.header)
			if _, err := r.readHeader(); err != nil {
				t.Fatalf("server stream header: %v", err)
			}
			r.expectStreamError(tc.condition)
		})
	}

	t.Run("stanza before authentication", func(t *testing.T) {
		r := dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		r.startTLS("localhost", tlsCfg)
		r.send("<message to='bob@localhost'><body>let me in</body></message>")
		r.expectStreamError("not-authorized")
	})

	t.Run("malformed IQs", func(t *testing.T) {
		r := dialRaw(t, srv.c2s, nil)
		r.login("localhost", tlsCfg, "mallory", pw, "iqs")
		for _, iq := range []string{
			"<iq type='get' id='two'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>",
			"<iq type='get' id='none'/>",
			"<iq type='fetch' id='badtype'><ping xmlns='urn:xmpp:ping'/></iq>",
		} {
			r.send(iq)
			el := r.mustNext()
			if _, cond := el.stanzaError(); !el.is(nsClient, "iq") || el.attr("type") != "error" || cond != "bad-request" {
				t.Errorf("%s answered with %s, want a bad-request error", iq, el)
			}
		}
		// An IQ without an id gets an error without one at most, and the
		// stream goes on.
		r.send("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		el := r.mustNext()
		if el.attr("id") == "" {
			if _, cond := el.stanzaError(); cond != "bad-request" {
				t.Errorf("IQ without id answered with %s", el)
			}
			el = r.mustNext()
		}
		if el.attr("id") != "after" || el.attr("type") != "result" {
			t.Errorf("after an IQ without id: %s, want the result of the next ping", el)
		}
	})

	// Stanza errors: the stanza is refused, the stream goes on.
	t.Run("malformed JIDs", func(t *testing.T) {
		c := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "mallory@localhost/lib", pw)
		for i, to := range []string{"a@b@c", "@localhost", "localhost/", "a@"} {
			id := "bad" + string(rune('0'+i))
			c.send("<message to='" + xmlEscape(to) + "' id='" + id + "' type='chat'><body>x</body></message>")
			e := c.expect("error for to="+to, func(e *element) bool {
				return e.is("", "message") && e.attr("id") == id
			})
			if typ, cond := e.stanzaError(); e.attr("type") != "error" || cond != "jid-malformed" || typ != "modify" {
				t.Errorf("message to %q: %s, want a modify/jid-malformed error", to, e)
			}
			r := c.iq("<iq type='get' to='" + xmlEscape(to) + "'><ping xmlns='urn:xmpp:ping'/></iq>")
			if _, cond := r.stanzaError(); r.attr("type") != "error" || cond != "jid-malformed" {
				t.Errorf("IQ to %q: %s, want a jid-malformed error", to, r)
			}
		}
		if r := c.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("stream unusable after stanza errors: %s", r)
		}
	})
}

// TestAuthThrottle checks that failed logins are limited per address and
// per account.
func TestAuthThrottle(t *testing.T) {
	t.Parallel()
	t.Run("per address", func(t *testing.T) {
		opt := defaultOptions()
		opt.AuthFailuresPerIP = 3
		srv := startServer(t, opt)
		srv.addUser(t, "tom@localhost", "right")
		srv.addUser(t, "uma@localhost", "right")
		tlsCfg := srv.tlsConfig(t, "localhost")

		r := dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		r.startTLS("localhost", tlsCfg)
		for i := 0; i < opt.AuthFailuresPerIP; i++ {
			if el := r.auth(sasl.ScramSha256, "tom", "guess"); saslCondition(el) != "not-authorized" {
				t.Fatalf("failure %d: %s, want <not-authorized/>", i+1, el)
			}
		}
		// Now even the right password of another account is refused from
		// this address, on a new connection too.
		for _, rr := range []*rawClient{r, nil} {
			if rr == nil {
				rr = dialRaw(t, srv.c2s, nil)
				rr.open("localhost")
				rr.startTLS("localhost", tlsCfg)
			}
			if el := rr.auth(sasl.Plain, "uma", "right"); saslCondition(el) != "temporary-auth-failure" {
				t.Errorf("login after %d failures: %s, want <temporary-auth-failure/>", opt.AuthFailuresPerIP, el)
			}
		}
	})

	for _, mech := range []sasl.Mechanism{sasl.ScramSha256, sasl.Plain} {
		t.Run("per account "+mech.Name, func(t *testing.T) {
			opt := defaultOptions()
			opt.AuthFailuresPerAccount = 2
			srv := startServer(t, opt)
			srv.addUser(t, "tom@localhost", "right")
			srv.addUser(t, "uma@localhost", "right")
			tlsCfg := srv.tlsConfig(t, "localhost")

			r := dialRaw(t, srv.c2s, nil)
			r.open("localhost")
			r.startTLS("localhost", tlsCfg)
			for i := 0; i < opt.AuthFailuresPerAccount; i++ {
				if el := r.auth(mech, "tom", "guess"); saslCondition(el) != "not-authorized" {
					t.Fatalf("failure %d: %s, want <not-authorized/>", i+1, el)
				}
			}
			// tom is locked for a while, even with the right password;
			// uma, from the same address, is not.
			if el := r.auth(mech, "tom", "right"); saslCondition(el) != "temporary-auth-failure" {
				t.Fatalf("tom's right password after %d failures: %s, want <temporary-auth-failure/>", opt.AuthFailuresPerAccount, el)
			}
			if el := r.auth(mech, "uma", "right"); !el.is(nsSASL, "success") {
				t.Errorf("uma's login: %s, want <success/>", el)
			}
			// A stranger's guesses never lock the owner out: from another
			// address tom gets in.
			o := dialRawFrom(t, "127.0.0.2", srv.c2s, nil)
			o.open("localhost")
			o.startTLS("localhost", tlsCfg)
			if el := o.auth(mech, "tom", "right"); !el.is(nsSASL, "success") {
				t.Errorf("tom's login from another address: %s, want <success/>", el)
			}
		})
	}

	// Real clients probe: they try -PLUS with a binding type the server
	// cannot do, abort, ask for mechanisms that are not offered. None of
	// that is a wrong password, and none of it may lock an address out.
	t.Run("only wrong credentials count", func(t *testing.T) {
		opt := defaultOptions()
		opt.AuthFailuresPerIP = 2
		opt.AuthFailuresPerAccount = 2
		srv := startServer(t, opt)
		srv.addUser(t, "tom@localhost", "right")
		tlsCfg := srv.tlsConfig(t, "localhost")
		first := "n,,n=tom,r=abcdefghijklmnop"
		cbFirst := "p=no-such-binding,,n=tom,r=abcdefghijklmnop"
		attempts := []struct {
			name, send, want string
		}{
			{"unknown mechanism", "<auth xmlns='" + nsSASL + "' mechanism='X-NOPE'>" + b64([]byte("x")) + "</auth>", "invalid-mechanism"},
			{"bad base64", "<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>!!!</auth>", "incorrect-encoding"},
			{"malformed SCRAM", "<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + b64([]byte("q,,garbage")) + "</auth>", "malformed-request"},
			{"unknown binding type", "<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256-PLUS'>" + b64([]byte(cbFirst)) + "</auth>", "not-authorized"},
			{"abort", "<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + b64([]byte(first)) + "</auth>", "aborted"},
		}
		for round := range 3 {
			r := dialRaw(t, srv.c2s, nil)
			r.open("localhost")
			r.startTLS("localhost", tlsCfg)
			for _, a := range attempts {
				r.send(a.send)
				el := r.mustNext()
				if a.want == "aborted" {
					if !el.is(nsSASL, "challenge") {
						t.Fatalf("round %d, %s: %s, want a challenge", round, a.name, el)
					}
					r.send("<abort xmlns='" + nsSASL + "'/>")
					el = r.mustNext()
				}
				if got := saslCondition(el); got != a.want {
					t.Fatalf("round %d, %s: %s, want <%s/>", round, a.name, el, a.want)
				}
			}
		}
		r := dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		r.startTLS("localhost", tlsCfg)
		if el := r.auth(sasl.ScramSha256, "tom", "right"); !el.is(nsSASL, "success") {
			t.Fatalf("login after 15 probing failures: %s, want <success/>", el)
		}
		// Two wrong passwords do count, and the refusal says when to retry.
		r = dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		r.startTLS("localhost", tlsCfg)
		for range 2 {
			if el := r.auth(sasl.ScramSha256, "tom", "guess"); saslCondition(el) != "not-authorized" {
				t.Fatalf("wrong password: %s, want <not-authorized/>", el)
			}
		}
		el := r.auth(sasl.ScramSha256, "tom", "right")
		if saslCondition(el) != "temporary-auth-failure" || !strings.Contains(el.String(), "try again in ") {
			t.Fatalf("login after 2 wrong passwords: %s, want <temporary-auth-failure/> saying when to retry", el)
		}
		// The log line may come after the reply the test saw.
		srv.waitLog(t, `reason="wrong credentials"`)
	})
}
