package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

const nsSM = "urn:xmpp:sm:3"

// smClient is a raw client doing XEP-0198 by hand: it counts the stanzas
// it handled and answers the server's <r/>.
type smClient struct {
	*rawClient
	h      uint32 // stanzas handled (what our <a/> says)
	noAcks bool   // leave <r/> unanswered
}

// smAuthed connects from the local address from (e.g. 127.0.0.2), logs in
// as user and returns the client and the features after SASL.
func smAuthed(t *testing.T, srv *server, tlsCfg *tls.Config, from, user, pw string) (*smClient, *element) {
	t.Helper()
	r := dialRawFrom(t, from, srv.c2s, nil)
	r.open("localhost")
	r.startTLS("localhost", tlsCfg)
	if el := r.auth(sasl.Plain, user, pw); !el.is(nsSASL, "success") {
		t.Fatalf("login as %s: %s", user, el)
	}
	r.restart()
	r.send(header("localhost"))
	if _, err := r.readHeader(); err != nil {
		t.Fatalf("stream header after SASL: %v", err)
	}
	return &smClient{rawClient: r}, r.mustNext()
}

// smLogin logs in, binds resource and enables resumable stream management;
// it returns the client and the resumption id.
func smLogin(t *testing.T, srv *server, tlsCfg *tls.Config, user, pw, resource string) (*smClient, string) {
	t.Helper()
	c, f := smAuthed(t, srv, tlsCfg, "", user, pw)
	if f.child(nsSM, "sm") == nil {
		t.Fatalf("no <sm xmlns='%s'/> in the features after authentication: %s", nsSM, f)
	}
	c.send("<iq type='set' id='bind1'><bind xmlns='" + nsBind + "'><resource>" + resource + "</resource></bind></iq>")
	if el := c.mustNext(); el.attr("type") != "result" {
		t.Fatalf("bind: %s", el)
	}
	c.send("<enable xmlns='" + nsSM + "' resume='true'/>")
	el := c.mustNext()
	if !el.is(nsSM, "enabled") || el.attr("id") == "" || el.attr("resume") != "true" {
		t.Fatalf("want <enabled resume='true' id=…/>, got %s", el)
	}
	return c, el.attr("id")
}

func isStanzaEl(el *element) bool {
	return el.XMLName.Space == "jabber:client" && (el.XMLName.Local == "message" || el.XMLName.Local == "presence" || el.XMLName.Local == "iq")
}

// read returns the next element that is not an <r/>; stanzas are counted
// and <r/> answered (unless noAcks).
func (c *smClient) read(timeout time.Duration) (*element, error) {
	for {
		el, err := c.next(timeout)
		if err != nil {
			return nil, err
		}
		if isStanzaEl(el) {
			c.h++
		}
		if el.is(nsSM, "r") {
			if !c.noAcks {
				c.ack()
			}
			continue
		}
		return el, nil
	}
}

func (c *smClient) mustRead() *element {
	c.t.Helper()
	el, err := c.read(waitTimeout)
	if err != nil {
		c.t.Fatalf("reading: %v", err)
	}
	return el
}

func (c *smClient) ack() { c.send(fmt.Sprintf("<a xmlns='%s' h='%d'/>", nsSM, c.h)) }

// drop kills the TCP connection with a reset, as a phone losing its
// network looks to the server: no </stream:stream>, no FIN.
func (c *smClient) drop() {
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	nc.Close()
}

// resume connects from another local address and resumes previd as user.
func smResume(t *testing.T, srv *server, tlsCfg *tls.Config, user, pw, previd string, h uint32) (*smClient, *element) {
	t.Helper()
	c, f := smAuthed(t, srv, tlsCfg, "127.0.0.2", user, pw)
	if f.child(nsSM, "sm") == nil {
		t.Fatalf("no <sm/> offered: %s", f)
	}
	c.h = h
	c.send(fmt.Sprintf("<resume xmlns='%s' previd='%s' h='%d'/>", nsSM, previd, h))
	return c, c.mustRead()
}

func bodyOf(el *element) string {
	if b := el.child("", "body"); b != nil {
		return b.Text
	}
	return ""
}

// TestSMAcks covers enabling and acknowledgements both ways (XEP-0198 §3,
// §4): the server asks every request_ack_every (5) stanzas, answers our
// <r/> with the number of stanzas it handled, and ends a stream that
// acknowledges more than it was sent.
func TestSMAcks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-sm"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	tlsCfg := srv.tlsConfig(t, "localhost")

	t.Run("before bind", func(t *testing.T) {
		c, _ := smAuthed(t, srv, tlsCfg, "", "bob", pw)
		c.send("<enable xmlns='" + nsSM + "'/>")
		if el := c.mustNext(); !el.is(nsSM, "failed") || el.child("", "unexpected-request") == nil {
			t.Fatalf("<enable/> before bind: %s, want <failed><unexpected-request/></failed>", el)
		}
	})

	bob, _ := smLogin(t, srv, tlsCfg, "bob", pw, "phone")
	bob.noAcks = true
	alice := dialRaw(t, srv.c2s, nil)
	alice.login("localhost", tlsCfg, "alice", pw, "pc")
	for i := range 6 {
		alice.send(fmt.Sprintf("<message to='bob@localhost/phone' type='chat'><body>%d</body></message>", i))
	}
	var got []string
	for len(got) < 7 {
		el, err := bob.next(waitTimeout)
		if err != nil {
			t.Fatalf("reading after %v: %v", got, err)
		}
		switch {
		case el.is(nsSM, "r"):
			got = append(got, "r")
		case el.is("", "message"):
			got = append(got, bodyOf(el))
		default:
			t.Fatalf("unexpected %s", el)
		}
	}
	if want := "[0 1 2 3 4 r 5]"; fmt.Sprint(got) != want {
		t.Fatalf("bob got %v, want %s (an <r/> after 5 stanzas)", got, want)
	}
	bob.send(fmt.Sprintf("<a xmlns='%s' h='6'/>", nsSM))

	// Our side: three stanzas, then <r/>: the server handled three.
	for range 3 {
		bob.send("<presence to='alice@localhost' type='unsubscribed'/>")
	}
	bob.send("<r xmlns='" + nsSM + "'/>")
	el := bob.mustNext()
	if !el.is(nsSM, "a") || el.attr("h") != "3" {
		t.Fatalf("answer to <r/>: %s, want <a h='3'/>", el)
	}

	// Acknowledging a stanza never sent ends the stream.
	bob.send(fmt.Sprintf("<a xmlns='%s' h='7'/>", nsSM))
	bob.expectStreamError("undefined-condition")
}

// TestSMResumeExactlyOnce drops bob's TCP in the middle of a 1,000-message
// exchange while alice keeps sending, resumes from another address, and
// counts every message: each arrives exactly once, acknowledged ones are
// not replayed, unacknowledged ones are.
func TestSMResumeExactlyOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-sm"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	tlsCfg := srv.tlsConfig(t, "localhost")

	bob, id := smLogin(t, srv, tlsCfg, "bob", pw, "phone")
	alice := dialRaw(t, srv.c2s, nil)
	alice.login("localhost", tlsCfg, "alice", pw, "pc")

	const total = 1000
	sent := make(chan error, 1)
	go func() {
		// Not alice.send: t.Fatal is for the test's goroutine.
		for i := range total {
			alice.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(alice.nc, fmt.Sprintf("<message to='bob@localhost/phone' type='chat' id='m%d'><body>%d</body></message>", i, i)); err != nil {
				sent <- err
				return
			}
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond) // a conversation, not a flood: the drop lands mid-way
			}
		}
		sent <- nil
	}()

	seen := make(map[int]int)
	take := func(c *smClient, el *element) {
		t.Helper()
		if !el.is("", "message") {
			t.Fatalf("unexpected %s", el)
		}
		n, err := strconv.Atoi(bodyOf(el))
		if err != nil || n < 0 || n >= total {
			t.Fatalf("unexpected message %s", el)
		}
		if seen[n]++; seen[n] > 1 {
			t.Fatalf("message %d delivered twice (h=%d)", n, c.h)
		}
	}
	for len(seen) < 300 {
		take(bob, bob.mustRead())
	}
	// Gone without a word; messages keep coming in meanwhile.
	h := bob.h
	bob.drop()

	bob2, el := smResume(t, srv, tlsCfg, "bob", pw, id, h)
	if !el.is(nsSM, "resumed") || el.attr("previd") != id || el.attr("h") != "0" {
		t.Fatalf("want <resumed previd='%s' h='0'/>, got %s", id, el)
	}
	for len(seen) < total {
		el, err := bob2.read(30 * time.Second)
		if err != nil {
			t.Fatalf("after resuming, %d of %d messages: %v", len(seen), total, err)
		}
		take(bob2, el)
	}
	if err := <-sent; err != nil {
		t.Fatalf("alice sending: %v", err)
	}
	// Nothing more: a ping's answer comes after anything still queued.
	bob2.send("<iq type='get' id='last' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := bob2.mustRead()
		if el.is("", "iq") && el.attr("id") == "last" {
			break
		}
		take(bob2, el)
	}
	bob2.ack()
	// The drop must have caught messages in flight, or this proved nothing.
	m := regexp.MustCompile(`stream resumed: .*replayed=(\d+)`).FindStringSubmatch(srv.log.String())
	if m == nil {
		t.Fatal("koi did not log the resumption")
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Fatal("the resumption replayed nothing: the drop caught no message in flight")
	} else {
		t.Logf("dropped after %d messages; %d replayed on resumption", h, n)
	}
}

// TestSMResumeRules: only the owner can resume; a resumed session keeps its
// presence without a new broadcast; an IQ sent while detached waits for
// the resumption.
func TestSMResumeRules(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-sm"
	for _, u := range []string{"alice", "bob", "mallory"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	tlsCfg := srv.tlsConfig(t, "localhost")

	bob, id := smLogin(t, srv, tlsCfg, "bob", pw, "phone")
	bob.send("<presence to='alice@localhost' type='subscribed'/>") // pre-approval (RFC 6121 §3.4)
	alice := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "alice@localhost/pc", pw)
	alice.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	alice.send("<presence/>")
	alice.send("<presence to='bob@localhost' type='subscribe'/>")
	alice.expect("bob's approval", isPresence("subscribed", "bob@localhost"))
	bob.send("<presence/>")
	alice.expect("bob's presence", isPresence("", "bob@localhost/phone"))
	bob.send("<r xmlns='" + nsSM + "'/>")
	for el := bob.mustRead(); !el.is(nsSM, "a"); el = bob.mustRead() {
	}
	h := bob.h
	bob.drop()

	// While bob is away, alice asks his phone something.
	alice.send("<iq type='get' id='v1' to='bob@localhost/phone'><query xmlns='jabber:iq:version'/></iq>")

	t.Run("other account", func(t *testing.T) {
		m, el := smResume(t, srv, tlsCfg, "mallory", pw, id, 0)
		if !el.is(nsSM, "failed") || el.child("", "item-not-found") == nil {
			t.Fatalf("mallory resuming bob's session: %s, want <failed><item-not-found/></failed>", el)
		}
		// The stream goes on: mallory may still bind.
		m.send("<iq type='set' id='b'><bind xmlns='" + nsBind + "'/></iq>")
		if el := m.mustRead(); el.attr("type") != "result" {
			t.Fatalf("bind after a failed resumption: %s", el)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		_, el := smResume(t, srv, tlsCfg, "bob", pw, "no-such-id", 0)
		if !el.is(nsSM, "failed") || el.child("", "item-not-found") == nil {
			t.Fatalf("%s, want <failed><item-not-found/></failed>", el)
		}
	})

	bob2, el := smResume(t, srv, tlsCfg, "bob", pw, id, h)
	if !el.is(nsSM, "resumed") {
		t.Fatalf("bob resuming: %s", el)
	}
	iq := bob2.mustRead()
	if !iq.is("", "iq") || iq.attr("id") != "v1" || iq.attr("from") != "alice@localhost/pc" {
		t.Fatalf("want alice's IQ replayed after the resumption, got %s", iq)
	}
	bob2.send("<iq type='result' id='v1' to='alice@localhost/pc'><query xmlns='jabber:iq:version'><name>raw</name><version>1</version></query></iq>")
	bob2.send("<message to='alice@localhost/pc' type='chat'><body>back</body></message>")
	alice.expect("bob's answer", func(e *element) bool { return e.is("", "iq") && e.attr("id") == "v1" && e.attr("type") == "result" })
	alice.expect("bob's message", isMessageFrom("bob@localhost/phone"))
	// Anything bob's session broadcast since it went away would have come
	// before his message.
	alice.expectNone("presence from bob's resumed session", 200*time.Millisecond, func(e *element) bool {
		return e.is("", "presence") && e.attr("from") == "bob@localhost/phone"
	})
}

// TestSMResumeExpiry lets a resumption time out: what bob's session held
// goes to offline storage and arrives at his next login; an IQ waiting for
// him is answered with <service-unavailable/>.
func TestSMResumeExpiry(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.ResumeTimeout = "2s"
	srv := startServer(t, opt)
	const pw = "pw-sm"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	tlsCfg := srv.tlsConfig(t, "localhost")

	bob, id := smLogin(t, srv, tlsCfg, "bob", pw, "phone")
	alice := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "alice@localhost/pc", pw)
	alice.send("<message to='bob@localhost/phone' type='chat' id='seen'><body>seen</body></message>")
	if el := bob.mustRead(); bodyOf(el) != "seen" {
		t.Fatalf("got %s", el)
	}
	bob.ack()
	bob.send("<r xmlns='" + nsSM + "'/>")
	for el := bob.mustRead(); !el.is(nsSM, "a"); el = bob.mustRead() {
	}
	bob.drop()
	for i := range 3 {
		alice.send(fmt.Sprintf("<message to='bob@localhost/phone' type='chat' id='k%d'><body>kept %d</body></message>", i, i))
	}
	alice.send("<iq type='get' id='q1' to='bob@localhost/phone'><query xmlns='jabber:iq:version'/></iq>")

	e := alice.expect("the IQ bounced once the session expired", func(e *element) bool { return e.is("", "iq") && e.attr("id") == "q1" })
	if e.attr("type") != "error" || !strings.Contains(e.String(), "service-unavailable") {
		t.Fatalf("IQ to the expired session: %s, want a service-unavailable error", e)
	}
	if _, el := smResume(t, srv, tlsCfg, "bob", pw, id, 1); !el.is(nsSM, "failed") || el.child("", "item-not-found") == nil {
		t.Fatalf("resuming an expired session: %s", el)
	}

	bob2 := dialRaw(t, srv.c2s, nil)
	bob2.login("localhost", tlsCfg, "bob", pw, "laptop")
	bob2.send("<presence/>")
	var bodies []string
	for len(bodies) < 3 {
		el := bob2.mustNext()
		if el.is("", "message") {
			if el.child("urn:xmpp:delay", "delay") == nil {
				t.Errorf("offline message without <delay/>: %s", el)
			}
			bodies = append(bodies, bodyOf(el))
		}
	}
	if want := "[kept 0 kept 1 kept 2]"; fmt.Sprint(bodies) != want {
		t.Fatalf("offline after expiry: %v, want %s (and not the acknowledged one)", bodies, want)
	}
	bob2.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el, err := bob2.next(waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if el.is("", "message") {
			t.Fatalf("extra offline message: %s", el)
		}
		if el.is("", "iq") && el.attr("id") == "p" {
			break
		}
	}
	srv.waitLog(t, "resumption timeout")
}

// TestSMSlixmpp runs a real client library, Debian's python3-slixmpp with
// its XEP-0198 plugin: it enables stream management, loses its TCP
// connection, reconnects and resumes, and gets the message sent to it
// while it was away.
func TestSMSlixmpp(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0198")
	srv := startServer(t, defaultOptions())
	const pw = "pw-sm"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	alice := dialRaw(t, srv.c2s, nil)
	alice.login("localhost", srv.tlsConfig(t, "localhost"), "alice", pw, "pc")

	dropped := false
	got, log, err := runSlixmpp(t, srv, "slixmpp_sm.py", map[string]any{
		"jid": "bob@localhost/slix", "password": pw, "want": "while you were away",
	}, func(line string) {
		if line == "DROPPED" && !dropped {
			dropped = true
			// bob's session is detached now (or about to be): the message
			// must wait for the resumption.
			alice.send("<message to='bob@localhost/slix' type='chat'><body>while you were away</body></message>")
		}
	})
	if err != nil || !strings.Contains(got, "RESUMED") || !strings.Contains(got, "GOT while you were away") {
		t.Fatalf("slixmpp: %v; its output: %s\nits log:\n%s", err, got, log)
	}
	srv.waitLog(t, "stream resumed")
}

// TestSMWebSocket: a WebSocket stream (RFC 7395) gets stream management
// too, and its session, once the socket is gone, resumes on a TCP stream.
func TestSMWebSocket(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.WebSocket = freeAddr(t)
	srv := startServer(t, opt)
	srv.waitListening(t, opt.WebSocket)
	const pw = "pw-sm"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	tlsCfg := srv.tlsConfig(t, "localhost")

	ws := dialWS(t, "ws://"+opt.WebSocket+"/xmpp-websocket", nil)
	ws.open()
	ws.loginSCRAM("bob", pw, "web")
	ws.send("<enable xmlns='" + nsSM + "' resume='true'/>")
	en := ws.next()
	if !en.is(nsSM, "enabled") || en.attr("id") == "" {
		t.Fatalf("<enable/> over WebSocket: %s", en)
	}
	alice := dialRaw(t, srv.c2s, nil)
	alice.login("localhost", tlsCfg, "alice", pw, "pc")
	alice.send("<message to='bob@localhost/web' type='chat'><body>one</body></message>")
	if m := ws.expect("message one", func(e *element) bool { return e.is(nsClient, "message") }); bodyOf(m) != "one" {
		t.Fatalf("got %s", m)
	}
	ws.ws.CloseNow() // no <close/>: the socket just goes
	alice.send("<message to='bob@localhost/web' type='chat'><body>two</body></message>")

	// h=0: "one" was never acknowledged, so it comes again, then "two".
	bob, el := smResume(t, srv, tlsCfg, "bob", pw, en.attr("id"), 0)
	if !el.is(nsSM, "resumed") {
		t.Fatalf("resuming the WebSocket session over TCP: %s", el)
	}
	var bodies []string
	for len(bodies) < 2 {
		if m := bob.mustRead(); m.is("", "message") {
			bodies = append(bodies, bodyOf(m))
		}
	}
	if fmt.Sprint(bodies) != "[one two]" {
		t.Fatalf("replayed %v, want [one two]", bodies)
	}
}
