package component

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	mcomp "mellium.im/xmpp/component"
	mjid "mellium.im/xmpp/jid"

	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/throttle"
	"github.com/koi-im/koi/core/xmlstream"
)

const (
	gw     = "gw.example.com"
	secret = "0123456789abcdef-secret"
)

// recRouter records what components route.
type recRouter struct {
	mu  sync.Mutex
	got []*xmlstream.Element
	ch  chan struct{}
}

func newRecRouter() *recRouter { return &recRouter{ch: make(chan struct{}, 100)} }

func (r *recRouter) Route(_ context.Context, el *xmlstream.Element) {
	r.mu.Lock()
	r.got = append(r.got, el.Copy())
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *recRouter) next(t *testing.T) *xmlstream.Element {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing routed")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	el := r.got[0]
	r.got = r.got[1:]
	return el
}

func (r *recRouter) none(t *testing.T) {
	t.Helper()
	select {
	case <-r.ch:
		t.Fatalf("routed unexpectedly: %v", r.got)
	case <-time.After(100 * time.Millisecond):
	}
}

// recObserver counts what the server reports.
type recObserver struct {
	mu         sync.Mutex
	handshakes map[string]int
	up         map[string]bool
	in, out    int
}

func (o *recObserver) ComponentHandshake(r string) {
	o.mu.Lock()
	o.handshakes[r]++
	o.mu.Unlock()
}
func (o *recObserver) ComponentConnected(d string, up bool) {
	o.mu.Lock()
	o.up[d] = up
	o.mu.Unlock()
}
func (o *recObserver) ComponentStanza(_ string, in bool, _ string) {
	o.mu.Lock()
	if in {
		o.in++
	} else {
		o.out++
	}
	o.mu.Unlock()
}

type env struct {
	t    *testing.T
	srv  *Server
	rt   *recRouter
	obs  *recObserver
	addr string
	logs *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, specs []Spec, ka Keepalive, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, rt: newRecRouter(), obs: &recObserver{handshakes: map[string]int{}, up: map[string]bool{}}, logs: &syncBuf{}}
	cfg := Config{
		Log:        hclog.New(&hclog.LoggerOptions{Output: e.logs, Level: hclog.Debug}),
		Components: specs,
		Hosts:      []string{"example.com"},
		Router:     e.rt,
		Limits:     xmlstream.Limits{MaxStanzaBytes: 4096},
		Observer:   e.obs,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l, nil, ka) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) endpoint(domain string) *Endpoint { return e.srv.eps[domain] }

// raw is a component speaking the protocol byte by byte.
type raw struct {
	t  *testing.T
	nc net.Conn
	r  *xmlstream.Reader
	id string
}

func dial(t *testing.T, addr string) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &raw{t: t, nc: nc, r: xmlstream.NewReader(nc, xmlstream.Limits{})}
}

func (c *raw) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// open sends a header for to and reads the server's.
func (c *raw) open(to string) *xmlstream.Element {
	c.t.Helper()
	c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + to + "'>")
	h, err := c.r.ReadHeader()
	if err != nil {
		c.t.Fatalf("server header: %v", err)
	}
	if c.r.ContentNamespace() != NSAccept {
		c.t.Fatalf("server content namespace %q", c.r.ContentNamespace())
	}
	c.id = h.Attr("id")
	return h
}

func (c *raw) login(domain, secret string) {
	c.t.Helper()
	c.open(domain)
	c.send("<handshake>" + Digest(c.id, secret) + "</handshake>")
	el := c.next()
	if el.Local != "handshake" || el.Space != NSAccept || len(el.Children) != 0 {
		c.t.Fatalf("want <handshake/>, got %v", el)
	}
}

func (c *raw) next() *xmlstream.Element {
	c.t.Helper()
	el, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("reading: %v", err)
	}
	return el
}

// streamError reads up to the stream error and checks the stream ends.
func (c *raw) streamError(condition string) {
	c.t.Helper()
	for {
		el, err := c.r.Next()
		if err != nil {
			c.t.Fatalf("want stream error %s, got %v", condition, err)
		}
		if el.Space == xmlstream.NSStream && el.Local == "error" {
			if got := el.FirstChild(); got == nil || got.Local != condition {
				c.t.Fatalf("want stream error %s, got %v", condition, el)
			}
			break
		}
	}
	if _, err := c.r.Next(); err != xmlstream.ErrStreamEnd {
		c.t.Fatalf("want </stream:stream> after the error, got %v", err)
	}
}

func TestDigest(t *testing.T) {
	// Python: hashlib.sha1(b"3BF96D32" + b"secret").hexdigest()
	if got := Digest("3BF96D32", "secret"); got != "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136" {
		t.Fatalf("Digest = %s", got)
	}
	if !verifyHandshake("id", "s", strings.ToUpper(Digest("id", "s"))) {
		t.Fatal("upper-case hex refused")
	}
	if verifyHandshake("id", "s", Digest("id", "t")) || verifyHandshake("id", "s", "") || verifyHandshake("id", "s", Digest("id", "s")[:39]) {
		t.Fatal("wrong handshake accepted")
	}
}

// TestMelliumComponent: mellium's XEP-0114 client (an independent
// implementation) authenticates, and stanzas flow both ways in the right
// namespaces.
func TestMelliumComponent(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepaliveOff}, nil)
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := mcomp.NewSession(ctx, mjid.MustParse(gw), []byte(secret), nc)
	if err != nil {
		t.Fatalf("mellium component session: %v", err)
	}
	defer sess.Close()
	if !e.endpoint(gw).Connected() {
		t.Fatal("endpoint not connected after the handshake")
	}

	// Component → user: the stanza and its body arrive in jabber:client.
	msg := `<message xmlns='jabber:component:accept' from='bot@gw.example.com/x' to='alice@example.com' type='chat' id='m1'><body>hello</body></message>`
	if err := sess.Send(ctx, xml.NewDecoder(strings.NewReader(msg))); err != nil {
		t.Fatal(err)
	}
	got := e.rt.next(t)
	if got.Space != xmlstream.NSClient || got.Local != "message" || got.Attr("from") != "bot@gw.example.com/x" {
		t.Fatalf("routed %v", got)
	}
	if b := got.Child(xmlstream.NSClient, "body"); b == nil || b.Text() != "hello" {
		t.Fatalf("body not in jabber:client: %v", got)
	}

	// User → component.
	in, _ := stanza.Parse(`<message from='alice@example.com/pc' to='bot@gw.example.com' type='chat' id='m2'><body>hi bot</body><x xmlns='urn:example'/></message>`)
	e.endpoint(gw).Deliver(ctx, in)
	d := xml.NewTokenDecoder(sess.TokenReader())
	var m struct {
		XMLName xml.Name
		From    string `xml:"from,attr"`
		Body    struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:"body"`
	}
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("reading the delivered message: %v", err)
		}
		if st, ok := tok.(xml.StartElement); ok {
			if err := d.DecodeElement(&m, &st); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if m.XMLName.Space != NSAccept || m.XMLName.Local != "message" || m.From != "alice@example.com/pc" ||
		m.Body.XMLName.Space != NSAccept || m.Body.Text != "hi bot" {
		t.Fatalf("component got %+v", m)
	}
	o := e.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.handshakes[HandshakeSuccess] != 1 || !o.up[gw] || o.in != 1 || o.out != 1 {
		t.Fatalf("observer: %+v", o)
	}
}

func TestRefusals(t *testing.T) {
	g := throttle.NewGuard(throttle.GuardConfig{PerAddress: 100, PerAccount: 2, Window: time.Minute})
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepaliveOff}, func(c *Config) { c.Guard = g })

	t.Run("bad secret", func(t *testing.T) {
		c := dial(t, e.addr)
		c.open(gw)
		c.send("<handshake>" + Digest(c.id, "wrong-secret-wrong") + "</handshake>")
		c.streamError("not-authorized")
		if e.endpoint(gw).Connected() {
			t.Fatal("connected with a wrong secret")
		}
		if l := e.logs.String(); !strings.Contains(l, "wrong secret") || !strings.Contains(l, c.nc.LocalAddr().String()) {
			t.Fatalf("the failure is not logged with the address:\n%s", l)
		}
	})
	t.Run("handshake for another stream id", func(t *testing.T) {
		c := dial(t, e.addr)
		c.open(gw)
		c.send("<handshake>" + Digest("not-"+c.id, secret) + "</handshake>")
		c.streamError("not-authorized")
	})
	t.Run("throttled after failures", func(t *testing.T) {
		c := dial(t, e.addr)
		c.open(gw)
		// Two failures above: the right secret is refused now.
		c.send("<handshake>" + Digest(c.id, secret) + "</handshake>")
		c.streamError("policy-violation")
	})
	t.Run("unknown domain", func(t *testing.T) {
		c := dial(t, e.addr)
		h := c.open("other.example.com")
		if h.Attr("from") != "" {
			t.Fatalf("header claims %q", h.Attr("from"))
		}
		c.streamError("host-unknown")
		if !strings.Contains(e.logs.String(), "other.example.com") {
			t.Fatal("the unknown domain is not logged")
		}
	})
	t.Run("no to", func(t *testing.T) {
		c := dial(t, e.addr)
		c.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>")
		if _, err := c.r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		c.streamError("improper-addressing")
	})
	t.Run("client namespace", func(t *testing.T) {
		c := dial(t, e.addr)
		c.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + gw + "'>")
		if _, err := c.r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		c.streamError("invalid-namespace")
	})
	t.Run("stanza before handshake", func(t *testing.T) {
		c := dial(t, e.addr)
		c.open(gw)
		c.send("<message from='a@" + gw + "' to='alice@example.com'><body>x</body></message>")
		c.streamError("not-authorized")
	})
	t.Run("not XML", func(t *testing.T) {
		c := dial(t, e.addr)
		c.send("GET / HTTP/1.1\r\n\r\n")
		if _, err := c.r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		c.streamError("not-well-formed")
	})
	e.rt.none(t)
}

func TestConflict(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}, {Domain: "new.example.com", Secret: secret, Replace: true}}, Keepalive{Mode: KeepaliveOff}, nil)

	// Default: the second connection is refused, the first keeps serving.
	first := dial(t, e.addr)
	first.login(gw, secret)
	second := dial(t, e.addr)
	second.open(gw)
	second.send("<handshake>" + Digest(second.id, secret) + "</handshake>")
	second.streamError("conflict")
	first.send("<message from='bot@" + gw + "' to='alice@example.com' id='a'><body>still here</body></message>")
	if got := e.rt.next(t); got.Attr("id") != "a" {
		t.Fatalf("routed %v", got)
	}

	// replace = true: the new connection takes over, the old one is told.
	old := dial(t, e.addr)
	old.login("new.example.com", secret)
	repl := dial(t, e.addr)
	repl.login("new.example.com", secret)
	old.streamError("conflict")
	in, _ := stanza.Parse(`<message from='alice@example.com/pc' to='new.example.com' id='r'/>`)
	e.endpoint("new.example.com").Deliver(context.Background(), in)
	if got := repl.next(); got.Attr("id") != "r" {
		t.Fatalf("new connection got %v", got)
	}
	if !e.endpoint("new.example.com").Connected() {
		t.Fatal("the domain went down when the replaced connection closed")
	}
}

func TestStanzaChecks(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepaliveOff}, nil)

	c := dial(t, e.addr)
	c.login(gw, secret)
	// No to: a bad-request error back, the stream stays.
	c.send("<iq type='get' id='q1' from='" + gw + "'><query xmlns='jabber:iq:version'/></iq>")
	r := c.next()
	if r.Attr("type") != "error" || r.Attr("id") != "q1" || r.Child(NSAccept, "error") == nil || r.Child(NSAccept, "error").Child(stanza.NSStanzas, "bad-request") == nil {
		t.Fatalf("want bad-request, got %v", r)
	}
	// An IQ without an id.
	c.send("<iq type='get' from='" + gw + "' to='alice@example.com/pc'><query xmlns='jabber:iq:version'/></iq>")
	if r := c.next(); r.Attr("type") != "error" {
		t.Fatalf("want an error, got %v", r)
	}
	// Stanzas in jabber:client are accepted too.
	c.send("<presence xmlns='jabber:client' from='bot@" + gw + "' to='alice@example.com'/>")
	if got := e.rt.next(t); got.Local != "presence" || got.Space != xmlstream.NSClient {
		t.Fatalf("routed %v", got)
	}
	// A from outside the domain ends the stream.
	c.send("<message from='alice@example.com' to='bob@example.com'><body>forged</body></message>")
	c.streamError("invalid-from")
	e.rt.none(t)

	c = dial(t, e.addr)
	c.login(gw, secret)
	c.send("<message to='alice@example.com'><body>no from</body></message>")
	c.streamError("invalid-from")

	c = dial(t, e.addr)
	c.login(gw, secret)
	c.send("<message from='sub." + gw + "' to='alice@example.com'><body>subdomain</body></message>")
	c.streamError("invalid-from")

	c = dial(t, e.addr)
	c.login(gw, secret)
	c.send("<message from='a@" + gw + "' to='alice@example.com'><body>" + strings.Repeat("x", 5000) + "</body></message>")
	c.streamError("policy-violation")

	c = dial(t, e.addr)
	c.login(gw, secret)
	c.send("<foo/>")
	c.streamError("unsupported-stanza-type")
	e.rt.none(t)
}

func TestBounceWhileDown(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepaliveOff}, nil)
	ep := e.endpoint(gw)
	ctx := context.Background()
	for _, s := range []string{
		`<message from='alice@example.com/pc' to='bot@gw.example.com' id='m'><body>x</body></message>`,
		`<iq from='alice@example.com/pc' to='gw.example.com' type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
		`<presence from='alice@example.com/pc' to='room@gw.example.com/alice'/>`,
	} {
		el, _ := stanza.Parse(s)
		ep.Deliver(ctx, el)
		got := e.rt.next(t)
		if got.Attr("type") != "error" || got.Attr("to") != "alice@example.com/pc" || got.Attr("from") != el.Attr("to") ||
			stanza.ErrorFrom(got) == nil || stanza.ErrorFrom(got).Condition != "service-unavailable" {
			t.Fatalf("bounce of %s: %v", s, got)
		}
	}
	// Nothing answers errors, results or unavailable presence.
	for _, s := range []string{
		`<message from='alice@example.com/pc' to='bot@gw.example.com' type='error'/>`,
		`<iq from='alice@example.com/pc' to='gw.example.com' type='result' id='i'/>`,
		`<presence from='alice@example.com/pc' to='room@gw.example.com/alice' type='unavailable'/>`,
	} {
		el, _ := stanza.Parse(s)
		ep.Deliver(ctx, el)
	}
	e.rt.none(t)

	// After a connection ends, the domain bounces again.
	c := dial(t, e.addr)
	c.login(gw, secret)
	c.send("</stream:stream>")
	if _, err := c.r.Next(); err != xmlstream.ErrStreamEnd {
		t.Fatalf("want the stream closed, got %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ep.Connected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if ep.Connected() {
		t.Fatal("still connected after </stream:stream>")
	}
	el, _ := stanza.Parse(`<message from='alice@example.com/pc' to='bot@gw.example.com' id='m'><body>x</body></message>`)
	ep.Deliver(ctx, el)
	if got := e.rt.next(t); got.Attr("type") != "error" {
		t.Fatalf("want a bounce, got %v", got)
	}
}

// TestQueueFull: a component that does not read gets no more than its
// queue; the rest bounces with resource-constraint.
func TestQueueFull(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepaliveOff}, func(c *Config) { c.SendQueue = 4 })
	c := dial(t, e.addr)
	c.login(gw, secret)
	ep := e.endpoint(gw)
	body := strings.Repeat("y", 3000)
	bounced := 0
	for i := 0; i < 2000 && bounced == 0; i++ {
		el, _ := stanza.Parse(`<message from='alice@example.com/pc' to='bot@gw.example.com' id='m'><body>` + body + `</body></message>`)
		ep.Deliver(context.Background(), el)
		select {
		case <-e.rt.ch:
			e.rt.mu.Lock()
			got := e.rt.got[0]
			e.rt.got = e.rt.got[1:]
			e.rt.mu.Unlock()
			if stanza.ErrorFrom(got) == nil || stanza.ErrorFrom(got).Condition != "resource-constraint" {
				t.Fatalf("bounce: %v", got)
			}
			bounced++
		default:
		}
	}
	if bounced == 0 {
		t.Fatal("a component that reads nothing never filled its queue")
	}
	if !strings.Contains(e.logs.String(), "send queue full") {
		t.Fatal("the full queue is not logged")
	}
}

func TestPingKeepalive(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepalivePing, Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond}, nil)
	c := dial(t, e.addr)
	c.login(gw, secret)
	// Answered pings keep the link; the answer is not routed.
	for i := 0; i < 2; i++ {
		p := c.next()
		if p.Local != "iq" || p.Child(nsPing, "ping") == nil || p.Attr("from") != "example.com" || p.Attr("to") != gw {
			t.Fatalf("want a ping, got %v", p)
		}
		c.send("<iq type='result' id='" + p.Attr("id") + "' from='" + gw + "' to='example.com'/>")
	}
	e.rt.none(t)
	// An answer with a ping-like id to someone else is routed.
	c.send("<iq type='result' id='koi-ping-x' from='" + gw + "' to='alice@example.com/pc'/>")
	if got := e.rt.next(t); got.Attr("id") != "koi-ping-x" {
		t.Fatalf("routed %v", got)
	}
	// An unanswered one closes it.
	if p := c.next(); p.Child(nsPing, "ping") == nil {
		t.Fatalf("want a ping, got %v", p)
	}
	c.streamError("connection-timeout")
}

func TestAuthTimeout(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepaliveOff}, func(c *Config) { c.AuthTimeout = 200 * time.Millisecond })
	c := dial(t, e.addr)
	c.open(gw)
	start := time.Now()
	c.streamError("connection-timeout")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
	// A link that sends nothing at all gets the same.
	c = dial(t, e.addr)
	if _, err := c.r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	c.streamError("connection-timeout")
}

func TestShutdown(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepaliveOff}, nil)
	c := dial(t, e.addr)
	c.login(gw, secret)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	c.streamError("system-shutdown")
	c.send("</stream:stream>")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewRejects(t *testing.T) {
	rt := newRecRouter()
	for _, specs := range [][]Spec{
		{{Domain: gw}},
		{{Domain: gw, Secret: "x"}, {Domain: "GW.example.com", Secret: "y"}},
	} {
		if _, err := New(Config{Router: rt, Components: specs}); err == nil {
			t.Errorf("New accepted %+v", specs)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted no router")
	}
}

// TestUpdate: a reload changes the secret for new handshakes and keeps the
// connected component; a changed set of domains is refused.
func TestUpdate(t *testing.T) {
	e := start(t, []Spec{{Domain: gw, Secret: secret}}, Keepalive{Mode: KeepaliveOff}, nil)
	c := dial(t, e.addr)
	c.login(gw, secret)
	const next = "the-next-secret-0123456789"
	if err := e.srv.Update([]Spec{{Domain: gw, Secret: next, Replace: true}}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Update([]Spec{{Domain: "other.example.com", Secret: next}}); err == nil {
		t.Fatal("a new domain accepted by Update")
	}
	if err := e.srv.Update(nil); err == nil {
		t.Fatal("a removed domain accepted by Update")
	}
	old := dial(t, e.addr)
	old.open(gw)
	old.send("<handshake>" + Digest(old.id, secret) + "</handshake>")
	old.streamError("not-authorized")
	// The new secret works, and replace = true now lets it take over.
	n := dial(t, e.addr)
	n.login(gw, next)
	c.streamError("conflict")
}

// countConn counts what is written to it; reads end at once (EOF), as
// from a peer that closed its side.
type countConn struct {
	net.Conn // nil: only what finish and the writer call is implemented
	mu       sync.Mutex
	bytes    int
}

func (c *countConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.bytes += len(p)
	c.mu.Unlock()
	return len(p), nil
}
func (c *countConn) written() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
func (c *countConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *countConn) SetWriteDeadline(time.Time) error { return nil }
func (c *countConn) SetReadDeadline(time.Time) error  { return nil }
func (c *countConn) Close() error                     { return nil }
func (c *countConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5} }

// TestFinishWaitsForAClosesTail: a connection that ends (finish) while
// another goroutine closes it with a stream error (a shutdown, a
// replacing component) writes that error before the socket closes.
func TestFinishWaitsForAClosesTail(t *testing.T) {
	srv, err := New(Config{Router: newRecRouter(), Components: []Spec{{Domain: gw, Secret: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		cc := &countConn{}
		c := newConn(srv, cc, nil, Keepalive{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Close("system-shutdown", "")
		}()
		for !c.closed.Load() {
			runtime.Gosched()
		}
		c.finish()
		if cc.written() == 0 {
			t.Fatalf("round %d: finished with the stream error unwritten", i)
		}
		<-done
	}
}
