package e2e

import (
	"strings"
	"testing"
	"time"
)

const (
	nsPush        = "urn:xmpp:push:0"
	nsPushSummary = "urn:xmpp:push:summary"
	nsPubSub      = "http://jabber.org/protocol/pubsub"
	nsData        = "jabber:x:data"
)

// appServer is the small XEP-0357 app server of these tests: an account
// on the same koi, logged in by hand so that the test decides how each
// notification is answered (a library would answer for it).
type appServer struct {
	t   *testing.T
	raw *rawClient
	jid string
}

func newAppServer(t *testing.T, srv *server, user, pw string) *appServer {
	t.Helper()
	r := dialRaw(t, srv.c2s, nil)
	r.login("localhost", srv.tlsConfig(t, "localhost"), user, pw, "push")
	return &appServer{t: t, raw: r, jid: user + "@localhost/push"}
}

// next waits for the next notification (a pubsub publish IQ) and returns
// it; other stanzas are skipped.
func (a *appServer) next() *element {
	a.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		el, err := a.raw.next(time.Until(deadline))
		if err != nil {
			a.t.Fatalf("app server: no notification: %v", err)
		}
		if el.is(nsClient, "iq") && el.attr("type") == "set" && el.child(nsPubSub, "pubsub") != nil {
			return el
		}
	}
	a.t.Fatalf("app server: no notification within %v", waitTimeout)
	return nil
}

// none checks that no notification came for what sender sent before:
// once sender's ping is answered, koi has handled its earlier stanzas and
// queued any notification to the app server; the app server's own ping
// answer then comes after it. No waiting on the clock (a read timeout
// would also end the raw client's XML decoder for good).
func (a *appServer) none(what string, sender *client) {
	a.t.Helper()
	sender.iq("<iq type='get' to='localhost'><ping xmlns='" + nsPing + "'/></iq>")
	id := "sync-" + newID()
	a.raw.send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='" + nsPing + "'/></iq>")
	for {
		el := a.raw.mustNext()
		if el.attr("id") == id {
			return
		}
		if el.is(nsClient, "iq") && el.child(nsPubSub, "pubsub") != nil {
			a.t.Errorf("app server: unexpected notification (%s): %s", what, el)
		}
	}
}

func (a *appServer) result(n *element) {
	a.raw.send("<iq type='result' id='" + n.attr("id") + "' to='" + n.attr("from") + "'/>")
}

func (a *appServer) fail(n *element, typ, condition string) {
	a.raw.send("<iq type='error' id='" + n.attr("id") + "' to='" + n.attr("from") + "'><error type='" + typ + "'><" +
		condition + " xmlns='" + nsStanzas + "'/></error></iq>")
}

// pushFields returns the summary form of a notification, field by field,
// and the node it was published to.
func pushFields(t *testing.T, n *element) (node string, fields map[string]string) {
	t.Helper()
	pub := n.child(nsPubSub, "pubsub").child(nsPubSub, "publish")
	x := pub.path("item", "notification", "x")
	if pub == nil || x == nil || !x.is(nsData, "x") {
		t.Fatalf("notification without a summary form: %s", n)
	}
	fields = map[string]string{}
	for _, f := range x.children(nsData, "field") {
		fields[f.attr("var")] = f.path("value").Text
	}
	if fields["FORM_TYPE"] != nsPushSummary {
		t.Errorf("summary FORM_TYPE %q: %s", fields["FORM_TYPE"], n)
	}
	return pub.attr("node"), fields
}

const pushOptions = "<x xmlns='jabber:x:data' type='submit'>" +
	"<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
	"<field var='secret'><value>eruio234vzxc2kla-91</value></field></x>"

// TestPush: a device enables push notifications (XEP-0357) with an app
// server that is a client of the same koi, goes offline, and a contact's
// message makes koi publish a notification to the app server: from the
// server, with the publish options, the count, and by default neither the
// sender nor the text. A session that is connected (even inactive under
// CSI) is not notified for; disable stops them; error answers drop the
// registration after max_errors; bad requests get XMPP errors.
func TestPush(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.Push = `max_errors = 2  interval = "0s"`
	srv := startServer(t, opt)
	const pw = "pw-push"
	for _, u := range []string{"alice", "bob", "app"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	app := newAppServer(t, srv, "app", pw)

	alice := login(t, local, "alice@localhost/phone", pw)
	if r := alice.iq("<iq type='get' to='alice@localhost'><query xmlns='" + nsDiscoInfo + "'/></iq>"); !hasFeature(r, nsPush) {
		t.Errorf("account disco lacks %s: %s", nsPush, r)
	}
	// Bad input: XMPP errors, nothing enabled.
	for _, c := range []struct{ name, payload, cond string }{
		{"no jid", "<enable xmlns='" + nsPush + "' node='n'/>", "bad-request"},
		{"bad jid", "<enable xmlns='" + nsPush + "' jid='a@b@c' node='n'/>", "jid-malformed"},
		{"no node", "<enable xmlns='" + nsPush + "' jid='" + app.jid + "'/>", "bad-request"},
		{"bad form", "<enable xmlns='" + nsPush + "' jid='" + app.jid + "' node='n'><x xmlns='jabber:x:data' type='submit'>" +
			"<field var='FORM_TYPE'><value>urn:example:other</value></field></x></enable>", "bad-request"},
		{"disable without jid", "<disable xmlns='" + nsPush + "'/>", "bad-request"},
	} {
		r := alice.iq("<iq type='set'>" + c.payload + "</iq>")
		if typ, cond := r.stanzaError(); typ == "" || cond != c.cond {
			t.Errorf("%s: got %s/%s, want %s: %s", c.name, typ, cond, c.cond, r)
		}
	}

	r := alice.iq("<iq type='set'><enable xmlns='" + nsPush + "' jid='" + app.jid + "' node='phone-1'>" + pushOptions + "</enable></iq>")
	if r.attr("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	alice.close()

	bob := login(t, local, "bob@localhost/pc", pw)
	bob.send("<message to='alice@localhost' type='chat'><body>Wherefore art thou, Romeo?</body></message>")
	n := app.next()
	if n.attr("from") != "localhost" || n.attr("to") != app.jid {
		t.Errorf("notification from %q to %q, want from the server to the app server: %s", n.attr("from"), n.attr("to"), n)
	}
	node, f := pushFields(t, n)
	if node != "phone-1" || f["message-count"] != "1" {
		t.Errorf("node %q, fields %v", node, f)
	}
	if strings.Contains(n.String(), "Romeo") || f["last-message-body"] != "New message" {
		t.Errorf("the body went to the app server by default (want only the placeholder): %v", f)
	}
	if _, ok := f["last-message-sender"]; ok {
		t.Errorf("the sender went to the app server by default: %v", f)
	}
	if po := n.child(nsPubSub, "pubsub").child(nsPubSub, "publish-options"); po == nil || !strings.Contains(po.String(), "eruio234vzxc2kla-91") {
		t.Errorf("publish options not forwarded: %s", n)
	}
	app.result(n)

	// Connected, even inactive: the message is delivered (CSI holds
	// nothing with a body), no notification.
	alice = login(t, local, "alice@localhost/phone", pw)
	alice.send("<presence/>")
	alice.send("<inactive xmlns='" + nsCSI + "'/>")
	alice.iq("<iq type='get' to='localhost'><ping xmlns='" + nsPing + "'/></iq>") // the presence and inactive were handled
	bob.send("<message to='alice@localhost' type='chat'><body>are you there?</body></message>")
	alice.expect("the live message", isMessageFrom("bob@localhost/pc"))
	app.none("a connected session got the message", bob)

	// Disabled: no more notifications.
	if r := alice.iq("<iq type='set'><disable xmlns='" + nsPush + "' jid='" + app.jid + "' node='phone-1'/></iq>"); r.attr("type") != "result" {
		t.Fatalf("disable: %s", r)
	}
	alice.close()
	bob.send("<message to='alice@localhost' type='chat'><body>after disable</body></message>")
	app.none("after disable", bob)

	// The app server answers errors: after max_errors (2) in a row the
	// registration is dropped.
	alice = login(t, local, "alice@localhost/phone", pw)
	alice.iq("<iq type='set'><enable xmlns='" + nsPush + "' jid='" + app.jid + "' node='phone-2'/></iq>")
	alice.close()
	for i := range 2 {
		bob.send("<message to='alice@localhost' type='chat'><body>ping " + string(rune('1'+i)) + "</body></message>")
		n := app.next()
		if node, _ := pushFields(t, n); node != "phone-2" {
			t.Fatalf("notification to node %q", node)
		}
		app.fail(n, "cancel", "item-not-found")
	}
	// The app server's errors are handled once its ping is answered.
	app.none("before the errors are handled", bob)
	bob.send("<message to='alice@localhost' type='chat'><body>after the errors</body></message>")
	app.none("after max_errors", bob)
	srv.waitLog(t, "push registration dropped")
}

// TestPushConfigured: with include_body and include_sender the app server
// gets the text and the sender; registrations survive a restart; a burst
// within push.interval goes as one notification counting its messages.
func TestPushConfigured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := defaultOptions()
	opt.Push = `include_body = true  include_sender = true  interval = "2s"`
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	srv := launch(t, dir, path, c2s, c2sTLS, opt, nil)
	const pw = "pw-push2"
	for _, u := range []string{"alice", "bob", "app"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, local, "alice@localhost/phone", pw)
	if r := alice.iq("<iq type='set'><enable xmlns='" + nsPush + "' jid='app@localhost/push' node='dev'/></iq>"); r.attr("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	alice.close()
	srv.stop(t)

	srv = launch(t, dir, path, c2s, c2sTLS, opt, nil)
	local = dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	app := newAppServer(t, srv, "app", pw)
	bob := login(t, local, "bob@localhost/pc", pw)
	for _, b := range []string{"one", "two", "three"} {
		bob.send("<message to='alice@localhost' type='chat'><body>" + b + "</body></message>")
	}
	n := app.next()
	_, f := pushFields(t, n)
	if f["message-count"] != "1" || f["last-message-body"] != "one" || f["last-message-sender"] != "bob@localhost/pc" {
		t.Errorf("first notification after a restart: %v", f)
	}
	app.result(n)
	// The other two wait for the interval and go together.
	n = app.next()
	_, f = pushFields(t, n)
	if f["message-count"] != "2" || f["last-message-body"] != "three" {
		t.Errorf("collapsed notification: %v, want 2 messages, the last one's body", f)
	}
	app.result(n)
}
