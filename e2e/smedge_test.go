package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestSMConflictWhileDetached: a phone's connection drops and, before it
// resumes, the same account binds the same resource on a new connection
// (a client that forgot its resumption id). The new login takes the
// resource; the detached session ends at once, and what it never
// acknowledged is not lost: it goes to the new session, which has the
// very address the senders used.
func TestSMConflictWhileDetached(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-smc"
	srv.addUser(t, "cleo@localhost", pw)
	srv.addUser(t, "dan@localhost", pw)
	tlsCfg := srv.tlsConfig(t, "localhost")

	cleo, id := smLogin(t, srv, tlsCfg, "cleo", pw, "phone")
	cleo.send("<presence/>")
	dan := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "dan@localhost/pc", pw)
	cleo.drop()
	waitLog(t, srv, "connection lost, session kept for resumption")
	for i := range 2 {
		dan.send(fmt.Sprintf("<message to='cleo@localhost/phone' type='chat' id='c%d'><body>while away %d</body></message>", i, i))
	}
	dan.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>") // both routed first

	again := dialRaw(t, srv.c2s, nil)
	again.login("localhost", tlsCfg, "cleo", pw, "phone")
	again.send("<presence/>")
	var bodies []string
	for len(bodies) < 2 {
		if el := again.mustNext(); el.is(nsClient, "message") {
			bodies = append(bodies, bodyOf(el))
		}
	}
	if fmt.Sprint(bodies) != "[while away 0 while away 1]" {
		t.Errorf("the new session got %v, want both messages once", bodies)
	}
	// The old session is gone: it cannot be resumed any more.
	if _, el := smResume(t, srv, tlsCfg, "cleo", pw, id, 0); !el.is(nsSM, "failed") {
		t.Errorf("resuming a session replaced by a new bind: %s", el)
	}
}

// TestSMExpiryWithAnotherResource: when a detached session expires while
// the user is online elsewhere, a message to the bare JID already reached
// that resource and is dropped, while one addressed to the lost resource
// alone bounces to its sender with <recipient-unavailable/> (as Prosody
// does): nothing silently lost, nothing duplicated.
func TestSMExpiryWithAnotherResource(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.ResumeTimeout = "2s"
	srv := startServer(t, opt)
	const pw = "pw-sme"
	srv.addUser(t, "eve@localhost", pw)
	srv.addUser(t, "fin@localhost", pw)
	tlsCfg := srv.tlsConfig(t, "localhost")

	phone, _ := smLogin(t, srv, tlsCfg, "eve", pw, "phone")
	phone.send("<presence/>")
	desk := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "eve@localhost/desk", pw)
	desk.send("<presence/>")
	fin := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "fin@localhost/f", pw)
	phone.drop()
	waitLog(t, srv, "connection lost, session kept for resumption")

	fin.send("<message to='eve@localhost/phone' type='chat' id='direct'><body>to the phone</body></message>")
	fin.send("<message to='eve@localhost' type='chat' id='bare'><body>to eve</body></message>")
	desk.expect("the bare-JID message on the desk", func(e *element) bool { return e.is(nsClient, "message") && bodyOf(e) == "to eve" })

	bounce := fin.expect("the bounce of the message to the lost resource", func(e *element) bool {
		return e.is(nsClient, "message") && e.attr("id") == "direct"
	})
	if typ, cond := bounce.stanzaError(); typ == "" || cond != "recipient-unavailable" {
		t.Errorf("bounce %s, want recipient-unavailable", bounce)
	}
	waitLog(t, srv, "resumption timeout, session ended")
	// Nothing for eve waits offline: the desk had both.
	later := dialRaw(t, srv.c2s, nil)
	later.login("localhost", tlsCfg, "eve", pw, "tablet")
	later.send("<presence/>")
	later.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := later.mustNext()
		if el.is(nsClient, "message") && strings.Contains(el.String(), "to ") {
			t.Fatalf("a message stored offline although the desk had it or its sender was told: %s", el)
		}
		if el.is(nsClient, "iq") && el.attr("id") == "p" {
			break
		}
	}
}

// TestSMDetachedPush: a phone with resumable stream management and push
// enabled loses its connection; a message for it is kept for the
// resumption and, since nobody will read it until the phone wakes up,
// koi publishes a push notification to the app server at once (what wakes
// the phone). The resumption then replays the message.
func TestSMDetachedPush(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.Push = `interval = "0s"`
	srv := startServer(t, opt)
	const pw = "pw-smp"
	for _, u := range []string{"gil", "hal", "app"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	tlsCfg := srv.tlsConfig(t, "localhost")
	app := newAppServer(t, srv, "app", pw)

	gil, id := smLogin(t, srv, tlsCfg, "gil", pw, "phone")
	gil.send("<iq type='set' id='push1'><enable xmlns='" + nsPush + "' jid='" + app.jid + "' node='gil-phone'/></iq>")
	for el := gil.mustRead(); !(el.is(nsClient, "iq") && el.attr("id") == "push1"); el = gil.mustRead() {
	}
	gil.send("<presence/>")
	hal := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "hal@localhost/h", pw)
	hal.send("<message to='gil@localhost/phone' type='chat' id='live'><body>while online</body></message>")
	for el := gil.mustRead(); bodyOf(el) != "while online"; el = gil.mustRead() {
	}
	gil.drop()
	waitLog(t, srv, "connection lost, session kept for resumption")

	hal.send("<message to='gil@localhost' type='chat' id='asleep'><body>wake up</body></message>")
	n := app.next()
	if node, f := pushFields(t, n); node != "gil-phone" || f["message-count"] == "" {
		t.Errorf("notification node %q fields %v", node, f)
	}
	app.result(n)

	gil2, el := smResume(t, srv, tlsCfg, "gil", pw, id, gil.h)
	if !el.is(nsSM, "resumed") {
		t.Fatalf("resume: %s", el)
	}
	for m := gil2.mustRead(); bodyOf(m) != "wake up"; m = gil2.mustRead() {
		if bodyOf(m) == "while online" {
			t.Fatalf("a handled message replayed: %s", m)
		}
	}
}
