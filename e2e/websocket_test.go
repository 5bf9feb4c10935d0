package e2e

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/xdg-go/scram"
)

const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// wsClient speaks XMPP over WebSocket (RFC 7395) by hand: one message per
// element, as a JavaScript client does.
type wsClient struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialWS(t testing.TB, url string, tlsCfg *tls.Config) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	opts := &websocket.DialOptions{Subprotocols: []string{"xmpp"}}
	if tlsCfg != nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	}
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("WebSocket dial %s: %v", url, err)
	}
	if ws.Subprotocol() != "xmpp" {
		t.Errorf("subprotocol %q, want xmpp", ws.Subprotocol())
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &wsClient{t: t, ws: ws}
}

func (c *wsClient) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("sending %s: %v", msg, err)
	}
}

// next reads one message and parses it as the one element it must be.
func (c *wsClient) next() *element {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("reading a message: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("a binary message: %q", b)
	}
	d := xml.NewDecoder(strings.NewReader(string(b)))
	var el *element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.t.Fatalf("message %s: %v", b, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if el != nil {
				c.t.Fatalf("more than one element in %s", b)
			}
			if el, err = decodeElement(d, t); err != nil {
				c.t.Fatalf("message %s: %v", b, err)
			}
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				c.t.Fatalf("text outside the element in %q", b)
			}
		default:
			c.t.Fatalf("%T in message %s", tok, b)
		}
	}
	if el == nil {
		c.t.Fatalf("no element in message %q", b)
	}
	return el
}

// expect reads messages until one that match accepts, failing on a
// stream error.
func (c *wsClient) expect(what string, match func(*element) bool) *element {
	c.t.Helper()
	for {
		el := c.next()
		if match(el) {
			return el
		}
		if el.is(nsStream, "error") {
			c.t.Fatalf("stream error while waiting for %s: %s", what, el)
		}
	}
}

// open sends <open/> and returns the features that follow the server's
// <open/>.
func (c *wsClient) open() *element {
	c.t.Helper()
	c.send("<open xmlns='" + nsFraming + "' to='localhost' version='1.0'/>")
	o := c.next()
	if !o.is(nsFraming, "open") || o.attr("from") != "localhost" || o.attr("version") != "1.0" || o.attr("id") == "" {
		c.t.Fatalf("want the server's <open/>, got %s", o)
	}
	f := c.next()
	if !f.is(nsStream, "features") {
		c.t.Fatalf("want stream features, got %s", f)
	}
	if f.child(nsTLS, "starttls") != nil {
		c.t.Errorf("STARTTLS offered over WebSocket: %s", f)
	}
	return f
}

// loginSCRAM authenticates with SCRAM-SHA-256 and binds resource.
func (c *wsClient) loginSCRAM(user, password, resource string) string {
	c.t.Helper()
	sc, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		c.t.Fatal(err)
	}
	conv := sc.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + base64.StdEncoding.EncodeToString([]byte(first)) + "</auth>")
	for {
		el := c.next()
		if !el.is(nsSASL, "challenge") && !el.is(nsSASL, "success") {
			c.t.Fatalf("SCRAM: got %s", el)
		}
		in, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text))
		if err != nil {
			c.t.Fatalf("SCRAM: %s: %v", el, err)
		}
		out, err := conv.Step(string(in))
		if err != nil {
			c.t.Fatalf("SCRAM step: %v", err)
		}
		if el.is(nsSASL, "success") {
			if !conv.Valid() {
				c.t.Fatal("SCRAM: the server's signature does not verify")
			}
			break
		}
		c.send("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString([]byte(out)) + "</response>")
	}
	// The stream restarts after SASL (RFC 7395 §3.5).
	f := c.open()
	if f.child(nsBind, "bind") == nil {
		c.t.Fatalf("no bind feature after SASL: %s", f)
	}
	c.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='" + nsBind + "'><resource>" + resource + "</resource></bind></iq>")
	res := c.expect("the bind result", func(e *element) bool { return e.is(nsClient, "iq") && e.attr("id") == "b1" })
	if res.attr("type") != "result" {
		c.t.Fatalf("bind: %s", res)
	}
	return strings.TrimSpace(res.path("bind", "jid").Text)
}

func mechanisms(f *element) []string {
	var out []string
	for _, m := range f.path("mechanisms").children(nsSASL, "mechanism") {
		out = append(out, strings.TrimSpace(m.Text))
	}
	return out
}

// A WebSocket client logs in with SCRAM on koi's own session code, and
// exchanges messages with a TCP client; koi's shutdown ends its stream
// with <system-shutdown/> and <close/>.
func TestWebSocket(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := "ws"
		if secure {
			name = "wss"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opt := defaultOptions()
			opt.WebSocket, opt.WebSocketTLS = freeAddr(t), secure
			s := startServer(t, opt)
			s.waitListening(t, opt.WebSocket)
			s.addUser(t, "alice@localhost", "alice-pw")
			s.addUser(t, "bob@localhost", "bob-pw")
			var tlsCfg *tls.Config
			url := "ws://" + opt.WebSocket + "/xmpp-websocket"
			if secure {
				tlsCfg = s.tlsConfig(t, "localhost")
				url = "wss://" + opt.WebSocket + "/xmpp-websocket"
			}

			bob := login(t, dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}, "bob@localhost/tcp", "bob-pw")
			bob.send("<presence/>") // available, so a message to the bare JID reaches it

			c := dialWS(t, url, tlsCfg)
			f := c.open()
			mechs := strings.Join(mechanisms(f), " ")
			if !strings.Contains(mechs, "SCRAM-SHA-256") || strings.Contains(mechs, "PLUS") {
				t.Errorf("mechanisms %q: want SCRAM-SHA-256 and no channel binding", mechs)
			}
			if hasPlain := strings.Contains(mechs, "PLAIN"); hasPlain != secure {
				t.Errorf("mechanisms %q: PLAIN offered = %v, want %v (only over wss)", mechs, hasPlain, secure)
			}
			full := c.loginSCRAM("alice", "alice-pw", "web")
			if full != "alice@localhost/web" {
				t.Fatalf("bound %q, want alice@localhost/web", full)
			}

			c.send("<presence xmlns='jabber:client'/>")
			c.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m1'><body>hello over websocket</body></message>")
			got := bob.expect("alice's message", isMessageFrom(full))
			if b := got.child("", "body"); b == nil || b.Text != "hello over websocket" {
				t.Errorf("bob got %s", got)
			}
			bob.send("<message to='" + full + "' type='chat'><body>re: hello &amp; welcome</body></message>")
			reply := c.expect("bob's reply", func(e *element) bool { return e.is(nsClient, "message") })
			if reply.attr("from") != "bob@localhost/tcp" || reply.child(nsClient, "body").Text != "re: hello & welcome" {
				t.Errorf("alice got %s", reply)
			}

			// XEP-0156 on the same listener.
			hc := &http.Client{Timeout: waitTimeout}
			if secure {
				hc.Transport = &http.Transport{TLSClientConfig: tlsCfg}
			}
			resp, err := hc.Get(strings.Replace(strings.Replace(url, "ws", "http", 1), "/xmpp-websocket", "/.well-known/host-meta", 1))
			if err != nil {
				t.Fatal(err)
			}
			meta, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(meta), "href='"+url+"'") {
				t.Errorf("host-meta does not list %s:\n%s", url, meta)
			}

			// Graceful shutdown: the stream error, then <close/>.
			stopped := make(chan struct{})
			go func() { defer close(stopped); s.stop(t) }()
			e := c.expect("the shutdown stream error", func(e *element) bool { return e.is(nsStream, "error") || e.is(nsFraming, "close") })
			if e.streamErrorCondition() != "system-shutdown" {
				t.Errorf("want <system-shutdown/>, got %s", e)
			}
			if cl := c.next(); !cl.is(nsFraming, "close") {
				t.Errorf("want <close/>, got %s", cl)
			}
			c.send("<close xmlns='" + nsFraming + "'/>")
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if _, b, err := c.ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Errorf("after <close/>: %q, %v; want the WebSocket closed normally", b, err)
			}
			select {
			case <-stopped:
			case <-time.After(2 * stopTimeout):
				t.Fatal("koi did not stop")
			}
		})
	}
}
