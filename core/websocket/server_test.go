package websocket

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/c2s"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/xmlstream"
)

// fakeHost is a virtual host with SCRAM accounts and nothing else; the
// tests here stop before authentication.
type fakeHost struct{}

func (fakeHost) Name() string           { return "localhost" }
func (fakeHost) SASLStore() sasl.Store  { return nil }
func (fakeHost) SCRAM() bool            { return true }
func (fakeHost) RegistrationOpen() bool { return false }
func (fakeHost) ChannelBinding() string { return "" }
func (fakeHost) PreAuthIQ(context.Context, *xmlstream.Element, string) *xmlstream.Element {
	return nil
}

// testServer runs a WebSocket listener in front of a real c2s server.
type testServer struct {
	ws  *Server
	c2s *c2s.Server
	url string // http://127.0.0.1:port
}

func startTest(t *testing.T, cfg Config) *testServer {
	t.Helper()
	cs := c2s.New(c2s.Config{
		Host: func(d string) c2s.Host {
			if d == "localhost" {
				return fakeHost{}
			}
			return nil
		},
		Router: router.New(),
	})
	cfg.Streams = cs
	s := New(cfg)
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cs.Shutdown(ctx)
		s.Shutdown(ctx)
		hs.Close()
	})
	return &testServer{ws: s, c2s: cs, url: hs.URL}
}

func (ts *testServer) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"/xmpp-websocket",
		&websocket.DialOptions{Subprotocols: []string{"xmpp"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.Header.Get("Sec-WebSocket-Protocol") != "xmpp" {
		t.Errorf("subprotocol %q, want xmpp", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func send(t *testing.T, c *websocket.Conn, typ websocket.MessageType, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, []byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
}

// expect reads the next message, which must contain every one of want.
func expect(t *testing.T, c *websocket.Conn, want ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read (want %q): %v", want, err)
	}
	if typ != websocket.MessageText {
		t.Errorf("message type %v, want text", typ)
	}
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Fatalf("got %s\nwant it to contain %q", b, w)
		}
	}
	return string(b)
}

// expectClosed checks that the server closes the WebSocket normally.
func expectClosed(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("got %s, want the WebSocket closed", b)
	}
	if s := websocket.CloseStatus(err); s != websocket.StatusNormalClosure {
		t.Errorf("closed with %v (status %d), want a normal closure", err, s)
	}
}

const openMsg = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"

func TestStreamOpenAndClose(t *testing.T) {
	ts := startTest(t, Config{})
	c := ts.dial(t)
	send(t, c, websocket.MessageText, openMsg)
	open := expect(t, c, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'", "from='localhost'", "version='1.0'", "id='")
	if !strings.HasSuffix(open, "/>") {
		t.Errorf("<open/> not empty: %s", open)
	}
	f := expect(t, c, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'", "SCRAM-SHA-256")
	for _, bad := range []string{"starttls", "PLAIN", "-PLUS"} {
		if strings.Contains(f, bad) {
			t.Errorf("plain ws offers %s: %s", bad, f)
		}
	}
	send(t, c, websocket.MessageText, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	expect(t, c, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	expectClosed(t, c)
}

// Bad messages end the stream with a stream error, <close/>, and a
// closed WebSocket (RFC 7395 §3.3.3).
func TestBadMessages(t *testing.T) {
	tests := []struct {
		name     string
		typ      websocket.MessageType
		msg      string
		open     bool // send <open/> first
		cond     string
		wantOpen bool // the server's <open/> comes first (no stream yet)
	}{
		{"binary", websocket.MessageBinary, "<presence/>", true, "bad-format", false},
		{"not XML", websocket.MessageText, "hello", true, "not-well-formed", false},
		{"two elements", websocket.MessageText, "<presence/><presence/>", true, "not-well-formed", false},
		{"open without namespace", websocket.MessageText, "<open to='localhost' version='1.0'/>", false, "invalid-namespace", true},
		{"stream header", websocket.MessageText, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' to='localhost' version='1.0'>", false, "not-well-formed", true},
		{"open again", websocket.MessageText, openMsg, true, "bad-format", false},
		{"too large", websocket.MessageText, "<message><body>" + strings.Repeat("x", 2000) + "</body></message>", true, "policy-violation", false},
		{"unknown host", websocket.MessageText, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>", false, "host-unknown", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startTest(t, Config{MaxMessageBytes: 1024})
			c := ts.dial(t)
			if tt.open {
				send(t, c, websocket.MessageText, openMsg)
				expect(t, c, "<open ")
				expect(t, c, "<stream:features")
			}
			send(t, c, tt.typ, tt.msg)
			if tt.wantOpen {
				expect(t, c, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'")
			}
			expect(t, c, "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>", "<"+tt.cond+" ")
			expect(t, c, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
			expectClosed(t, c)
		})
	}
}

func TestShutdownClosesStreams(t *testing.T) {
	ts := startTest(t, Config{})
	c := ts.dial(t)
	send(t, c, websocket.MessageText, openMsg)
	expect(t, c, "<open ")
	expect(t, c, "<stream:features")
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts.c2s.Shutdown(ctx)
		ts.ws.Shutdown(ctx)
	}()
	expect(t, c, "<system-shutdown ")
	expect(t, c, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	send(t, c, websocket.MessageText, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	expectClosed(t, c)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

func TestHandshakeRefusals(t *testing.T) {
	ts := startTest(t, Config{})
	get := func(path string, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.url+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/xmpp-websocket", map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
	})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `subprotocol "xmpp"`) {
		t.Errorf("without a subprotocol: %d %q, want 400 naming the xmpp subprotocol", resp.StatusCode, body)
	}
	resp, body = get("/xmpp-websocket", map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "chat, mqtt",
	})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("with other subprotocols: %d %q, want 400", resp.StatusCode, body)
	}
	if resp, body = get("/xmpp-websocket", nil); resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %d %q, want 426", resp.StatusCode, body)
	}
	if resp, _ = get("/other", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("other path: %d, want 404", resp.StatusCode)
	}
	// A browser page from another site may not open a stream.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, r, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"/xmpp-websocket", &websocket.DialOptions{
		Subprotocols: []string{"xmpp"}, HTTPHeader: http.Header{"Origin": {"https://evil.example"}},
	})
	if err == nil || r == nil || r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin handshake: %v, want 403", err)
	}
}

// Pages from the configured origins may open a stream; others still may
// not, and a refusal names the origin in the log.
func TestAllowedOrigins(t *testing.T) {
	var log strings.Builder
	var mu sync.Mutex
	ts := startTest(t, Config{
		Origins: []string{"chat.example.com", "*.corp.example:8443"},
		Log:     hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{mu: &mu, w: &log}, Level: hclog.Info}),
	})
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"https://chat.example.com", true},
		{"https://web.corp.example:8443", true},
		{"http://" + strings.TrimPrefix(ts.url, "http://"), true}, // the endpoint's own origin
		{"https://evil.example", false},
		{"https://chat.example.com.evil.example", false},
		{"https://web.corp.example", false}, // the pattern names the port
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, r, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"/xmpp-websocket", &websocket.DialOptions{
			Subprotocols: []string{"xmpp"}, HTTPHeader: http.Header{"Origin": {tt.origin}},
		})
		cancel()
		switch {
		case tt.ok && err != nil:
			t.Errorf("origin %s: %v, want the handshake accepted", tt.origin, err)
		case !tt.ok && (err == nil || r == nil || r.StatusCode != http.StatusForbidden):
			t.Errorf("origin %s: %v, want 403", tt.origin, err)
		}
		if c != nil {
			c.CloseNow()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(log.String(), "origin=https://evil.example") {
		t.Errorf("refused origin not logged at info:\n%s", log.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestHostMeta(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    Config
		want   string // "" for the URL built from the request
		scheme string
	}{
		{"from the request", Config{Path: "/ws"}, "", "ws"},
		{"public_url", Config{PublicURL: "wss://chat.example.com/xmpp-websocket"}, "wss://chat.example.com/xmpp-websocket", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := startTest(t, tt.cfg)
			want := tt.want
			if want == "" {
				want = tt.scheme + "://" + strings.TrimPrefix(ts.url, "http://") + tt.cfg.Path
			}
			resp, err := http.Get(ts.url + "/.well-known/host-meta")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xrd+xml") {
				t.Errorf("host-meta Content-Type %q", ct)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("host-meta without CORS header")
			}
			if !strings.Contains(string(b), "<Link rel='urn:xmpp:alt-connections:websocket' href='"+want+"'/>") ||
				!strings.Contains(string(b), "xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'") {
				t.Errorf("host-meta:\n%s\nwant a websocket link to %s", b, want)
			}

			resp, err = http.Get(ts.url + "/.well-known/host-meta.json")
			if err != nil {
				t.Fatal(err)
			}
			var jrd struct {
				Links []struct{ Rel, Href string }
			}
			err = json.NewDecoder(resp.Body).Decode(&jrd)
			resp.Body.Close()
			if err != nil || len(jrd.Links) != 1 || jrd.Links[0].Rel != RelWebSocket || jrd.Links[0].Href != want {
				t.Errorf("host-meta.json: %+v, %v; want one link to %s", jrd, err, want)
			}
		})
	}
}
