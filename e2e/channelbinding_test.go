package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

// TestSASLChannelBinding drives SCRAM by hand with xdg-go's client to send
// what the library clients in the other tests never do: a binding type koi
// cannot give, and the gs2 flag "y".
func TestSASLChannelBinding(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "channel binding 7?"
	srv.addUser(t, "alice@localhost", pw)

	// start opens a stream, upgrades it to TLS 1.3 and returns the client
	// and the features of the encrypted stream.
	start := func(t *testing.T) (*rawClient, *element) {
		cfg := srv.tlsConfig(t, "localhost")
		cfg.MinVersion = tls.VersionTLS13
		r := dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		return r, r.startTLS("localhost", cfg)
	}
	client := func(t *testing.T) *scram.Client {
		c, err := scram.SHA256.NewClient("alice", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	state := func(r *rawClient) tls.ConnectionState { return r.nc.(*tls.Conn).ConnectionState() }

	t.Run("features list the types", func(t *testing.T) {
		_, f := start(t)
		var types []string
		for _, cb := range f.child("urn:xmpp:sasl-cb:0", "sasl-channel-binding").children("urn:xmpp:sasl-cb:0", "channel-binding") {
			types = append(types, cb.attr("type"))
		}
		if want := []string{"tls-exporter", "tls-server-end-point"}; !slices.Equal(types, want) {
			t.Errorf("channel binding types %v, want %v in %s", types, want, f)
		}
	})

	t.Run("a type koi cannot give, then y", func(t *testing.T) {
		r, _ := start(t)
		// RFC 5929 defines it; nobody uses it, koi included.
		other := scram.ChannelBinding{Type: "tls-unique-for-telnet", Data: []byte("whatever")}
		for _, mech := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"} {
			c, _ := scram.SHA1.NewClient("alice", pw, "")
			if mech == "SCRAM-SHA-256-PLUS" {
				c = client(t)
			}
			el := scramAuth(t, r, mech, c.NewConversationWithChannelBinding(other))
			want := "channel binding type tls-unique-for-telnet is not supported; this connection offers tls-exporter, tls-server-end-point"
			if text := el.child(nsSASL, "text"); saslCondition(el) != "not-authorized" || text == nil || text.Text != want {
				t.Fatalf("%s with tls-unique: %s, want not-authorized with %q", mech, el, want)
			}
		}
		// Both sides now know they share no type: y is not a downgrade.
		if el := scramAuth(t, r, "SCRAM-SHA-256", client(t).NewConversationAdvertisingChannelBinding()); !el.is(nsSASL, "success") {
			t.Fatalf("y after the mismatch: %s", el)
		}
		waitLog(t, srv, `authenticated: remote=\S+ user=alice@localhost mechanism=SCRAM-SHA-256 channel_binding=none tls=1\.3`)
	})

	// On TLS 1.3 koi takes OpenSSL's tls-unique (the client Finished; the
	// real value is checked against OpenSSL in core/tlscb and with slixmpp
	// in e2e/clients): wrong data is a failed binding, not a missing type,
	// so it does not open the y path.
	t.Run("tls-unique on TLS 1.3 with wrong data", func(t *testing.T) {
		r, _ := start(t)
		unique := scram.ChannelBinding{Type: scram.ChannelBindingTLSUnique, Data: []byte("not the client finished")}
		if el := scramAuth(t, r, "SCRAM-SHA-256-PLUS", client(t).NewConversationWithChannelBinding(unique)); saslCondition(el) != "not-authorized" {
			t.Fatalf("wrong tls-unique data: %s", el)
		}
		if el := scramAuth(t, r, "SCRAM-SHA-256", client(t).NewConversationAdvertisingChannelBinding()); saslCondition(el) != "not-authorized" {
			t.Fatalf("y after wrong tls-unique data: %s", el)
		}
	})

	t.Run("y without a mismatch is a downgrade", func(t *testing.T) {
		r, _ := start(t)
		el := scramAuth(t, r, "SCRAM-SHA-256", client(t).NewConversationAdvertisingChannelBinding())
		if saslCondition(el) != "not-authorized" || !strings.Contains(el.String(), "channel binding downgrade") {
			t.Fatalf("y with -PLUS offered: %s", el)
		}
		// Wrong binding data is no mismatch of types: y stays refused.
		bad := scram.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: make([]byte, 32)}
		if el := scramAuth(t, r, "SCRAM-SHA-256-PLUS", client(t).NewConversationWithChannelBinding(bad)); saslCondition(el) != "not-authorized" {
			t.Fatalf("wrong tls-exporter data: %s", el)
		}
		if el := scramAuth(t, r, "SCRAM-SHA-256", client(t).NewConversationAdvertisingChannelBinding()); saslCondition(el) != "not-authorized" {
			t.Fatalf("y after wrong binding data: %s", el)
		}
	})

	for _, typ := range []string{"tls-exporter", "tls-server-end-point"} {
		t.Run(typ, func(t *testing.T) {
			r, _ := start(t)
			cs := state(r)
			cb, err := scram.NewTLSExporterBinding(&cs)
			if typ == "tls-server-end-point" {
				cb, err = scram.NewTLSServerEndpointBinding(&cs)
			}
			if err != nil {
				t.Fatal(err)
			}
			if el := scramAuth(t, r, "SCRAM-SHA-256-PLUS", client(t).NewConversationWithChannelBinding(cb)); !el.is(nsSASL, "success") {
				t.Fatalf("%s: %s", typ, el)
			}
			waitLog(t, srv, `authenticated: remote=\S+ user=alice@localhost mechanism=SCRAM-SHA-256-PLUS channel_binding=`+typ+` tls=1\.3`)
		})
	}
}

// scramAuth runs one SCRAM exchange with conv and returns the element that
// ended it; on <success/> it checks the server's signature.
func scramAuth(t *testing.T, r *rawClient, mech string, conv *scram.ClientConversation) *element {
	t.Helper()
	msg, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	r.send("<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" + b64([]byte(msg)) + "</auth>")
	for {
		el := r.mustNext()
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text))
		if err != nil {
			t.Fatalf("not base64: %s", el)
		}
		switch {
		case el.is(nsSASL, "challenge"):
			if msg, err = conv.Step(string(data)); err != nil {
				t.Fatalf("client refuses %q: %v", data, err)
			}
			r.send("<response xmlns='" + nsSASL + "'>" + b64([]byte(msg)) + "</response>")
		case el.is(nsSASL, "success"):
			if _, err := conv.Step(string(data)); err != nil || !conv.Valid() {
				t.Fatalf("server signature refused: %v", err)
			}
			return el
		default:
			return el
		}
	}
}

// waitLog waits for a line of koi's log matching pattern.
func waitLog(t *testing.T, srv *server, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(waitTimeout)
	for !re.MatchString(srv.log.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %q in\n%s", pattern, srv.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestChannelBindingResumedAfterReload: a client that resumes its TLS
// session (the session cache of Go's TLS, Android's and OpenSSL's) binds
// to the certificate it checked when the session began, even when a
// reload has replaced the certificate since: koi's session tickets carry
// that certificate's hash, so tls-server-end-point stays offered and
// right on the resumed connection.
func TestChannelBindingResumedAfterReload(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "resumed 8?"
	srv.addUser(t, "alice@localhost", pw)
	cfg := srv.tlsConfig(t, "localhost")
	cfg.MinVersion = tls.VersionTLS13
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	loginEndPoint := func(what string) tls.ConnectionState {
		t.Helper()
		r := dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		f := r.startTLS("localhost", cfg)
		var types []string
		for _, cb := range f.child("urn:xmpp:sasl-cb:0", "sasl-channel-binding").children("urn:xmpp:sasl-cb:0", "channel-binding") {
			types = append(types, cb.attr("type"))
		}
		if !slices.Contains(types, "tls-server-end-point") {
			t.Fatalf("%s: channel binding types %v, without tls-server-end-point", what, types)
		}
		cs := r.nc.(*tls.Conn).ConnectionState()
		cb, err := scram.NewTLSServerEndpointBinding(&cs)
		if err != nil {
			t.Fatal(err)
		}
		c, err := scram.SHA256.NewClient("alice", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		if el := scramAuth(t, r, "SCRAM-SHA-256-PLUS", c.NewConversationWithChannelBinding(cb)); !el.is(nsSASL, "success") {
			t.Fatalf("%s: %s", what, el)
		}
		return cs
	}
	if cs := loginEndPoint("first session"); cs.DidResume {
		t.Fatal("the first session resumed")
	}
	if cs := loginEndPoint("resumed"); !cs.DidResume {
		t.Fatal("the second session did not resume")
	}

	writeCert(t, filepath.Join(srv.dir, "tls", "cert.pem"), filepath.Join(srv.dir, "tls", "key.pem"))
	mark := len(srv.log.String())
	srv.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, srv, "configuration reloaded")
	if !strings.Contains(srv.log.String()[mark:], "tls certificate") {
		t.Fatalf("the reload did not replace the certificate:\n%s", srv.log.String()[mark:])
	}
	if cs := loginEndPoint("resumed after the reload"); !cs.DidResume {
		t.Fatal("the session did not resume after the reload")
	}
}
