package e2e

import (
	"context"
	"testing"

	"mellium.im/sasl"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "correct horse 9!"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "alice@"+secondHost, "other host, other password")
	tlsCfg := srv.tlsConfig(t, "localhost")

	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
	}{
		{"SCRAM-SHA-256", sasl.ScramSha256},
		{"SCRAM-SHA-1", sasl.ScramSha1},
		{"PLAIN", sasl.Plain},
		{"SCRAM-SHA-256-PLUS", sasl.ScramSha256Plus},
		{"SCRAM-SHA-1-PLUS", sasl.ScramSha1Plus},
	} {
		t.Run("STARTTLS "+tc.name, func(t *testing.T) {
			c := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg, mechs: []sasl.Mechanism{tc.mech}}, "alice@localhost/"+tc.name, pw)
			// The session works: the server answers a ping.
			if r := c.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
				t.Errorf("ping after login: %s", r)
			}
		})
	}

	t.Run("direct TLS", func(t *testing.T) {
		c := login(t, dialOpts{addr: srv.c2sTLS, directTLS: true, tls: tlsCfg}, "alice@localhost/direct", pw)
		if st := c.sess.ConnectionState(); !st.HandshakeComplete {
			t.Errorf("direct TLS session not encrypted")
		}
		if r := c.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping after login: %s", r)
		}
	})

	t.Run("virtual host", func(t *testing.T) {
		// The same local part on the second host is another account.
		cfg := srv.tlsConfig(t, secondHost)
		c := login(t, dialOpts{addr: srv.c2s, tls: cfg}, "alice@"+secondHost+"/vh", "other host, other password")
		if r := c.iq("<iq type='get' to='" + secondHost + "'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping to %s: %s", secondHost, r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if c2, err := connect(ctx, t, dialOpts{addr: srv.c2s, tls: cfg}, "alice@"+secondHost+"/vh2", pw); err == nil {
			c2.close()
			t.Errorf("alice@%s logged in with alice@localhost's password", secondHost)
		}
	})

	for _, tc := range []struct {
		name, user, password string
		mech                 sasl.Mechanism
	}{
		{"wrong password SCRAM-SHA-256", "alice", "wrong", sasl.ScramSha256},
		{"wrong password SCRAM-SHA-1", "alice", "wrong", sasl.ScramSha1},
		{"wrong password PLAIN", "alice", "wrong", sasl.Plain},
		{"unknown user SCRAM-SHA-256", "nobody", pw, sasl.ScramSha256},
		{"unknown user PLAIN", "nobody", pw, sasl.Plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, srv.c2s, nil)
			r.open("localhost")
			r.startTLS("localhost", tlsCfg)
			el := r.auth(tc.mech, tc.user, tc.password)
			if got := saslCondition(el); got != "not-authorized" {
				t.Fatalf("SASL result %s, want <failure><not-authorized/></failure>", el)
			}
			// The stream stays usable for another attempt.
			if el := r.auth(sasl.Plain, "alice", pw); !el.is(nsSASL, "success") {
				t.Errorf("retry with the right password: %s", el)
			}
		})
	}

	t.Run("user names are case-insensitive", func(t *testing.T) {
		r := dialRaw(t, srv.c2s, nil)
		r.login("localhost", tlsCfg, "ALICE", pw, "upper")
		r.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if el := r.mustNext(); el.attr("to") != "alice@localhost/upper" {
			t.Errorf("logged in as ALICE, the server addresses %s", el)
		}
	})

	t.Run("authzid of another user", func(t *testing.T) {
		r := dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		r.startTLS("localhost", tlsCfg)
		r.send("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + b64([]byte("bob@localhost\x00alice\x00"+pw)) + "</auth>")
		if el := r.mustNext(); saslCondition(el) != "invalid-authzid" {
			t.Errorf("PLAIN as alice for bob: %s, want <invalid-authzid/>", el)
		}
		r.send("<auth xmlns='" + nsSASL + "' mechanism='DIGEST-MD5'/>")
		if el := r.mustNext(); saslCondition(el) != "invalid-mechanism" {
			t.Errorf("unknown mechanism: %s, want <invalid-mechanism/>", el)
		}
	})

	t.Run("library reports the failure", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c, err := connect(ctx, t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "alice@localhost/x", "wrong")
		if err == nil {
			c.close()
			t.Fatal("login with a wrong password succeeded")
		}
		t.Logf("mellium reports: %v", err)
	})

	t.Run("no login without STARTTLS", func(t *testing.T) {
		r := dialRaw(t, srv.c2s, nil)
		f := r.open("localhost")
		st := f.child(nsTLS, "starttls")
		if st == nil || st.child(nsTLS, "required") == nil {
			t.Errorf("features %s: want <starttls><required/></starttls>", f)
		}
		if len(f.Children) != 1 {
			t.Errorf("features %s offer more than STARTTLS before TLS", f)
		}
		r.send("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + b64([]byte("\x00alice\x00"+pw)) + "</auth>")
		el, err := r.next(waitTimeout)
		switch {
		case err != nil:
			t.Fatalf("after plaintext auth: %v", err)
		case el.is(nsStream, "error"):
			if c := el.streamErrorCondition(); c != "policy-violation" && c != "not-authorized" {
				t.Errorf("stream error %s", el)
			}
			r.expectClosed()
		case saslCondition(el) == "encryption-required":
		default:
			t.Errorf("plaintext auth answered with %s, want a refusal", el)
		}
	})
}
