package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// client is a well-behaved XMPP client built on mellium.im/xmpp: the
// library negotiates the stream (STARTTLS or direct TLS, SASL, resource
// binding) and reads it; the test sends hand-written stanzas and inspects
// what arrives.
type client struct {
	t    testing.TB
	sess *xmpp.Session
	jid  string // the bound full JID

	mu      sync.Mutex
	backlog []*element    // received and not yet taken by expect
	notify  chan struct{} // signalled on every arrival

	features      []string      // answered to disco#info once announceCaps set them
	discoAnswered chan struct{} // signalled when such an answer went out

	done     chan struct{} // closed when the read loop ends
	serveErr error         // why it ended, valid after done
	closed   bool
}

// dialOpts choose how a client connects.
type dialOpts struct {
	addr      string
	directTLS bool // TLS from the first byte (XEP-0368) instead of STARTTLS
	tls       *tls.Config
	mechs     []sasl.Mechanism // default SCRAM-SHA-256
}

// connect logs in as the full JID addr with password and binds its
// resource. It returns the library's error if any step fails.
func connect(ctx context.Context, t testing.TB, o dialOpts, full, password string) (*client, error) {
	origin, err := jid.Parse(full)
	if err != nil {
		return nil, err
	}
	nc, err := (&net.Dialer{Timeout: waitTimeout}).DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	mechs := o.mechs
	if len(mechs) == 0 {
		mechs = []sasl.Mechanism{sasl.ScramSha256}
	}
	var rw io.ReadWriter = nc
	var features []xmpp.StreamFeature
	if o.directTLS {
		tc := tls.Client(nc, o.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("direct TLS handshake: %w", err)
		}
		rw = tc
	} else {
		features = append(features, xmpp.StartTLS(o.tls))
	}
	features = append(features, xmpp.SASL("", password, mechs...), bindResource())
	sess, err := xmpp.NewClientSession(ctx, origin, rw, features...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := &client{t: t, sess: sess, jid: sess.LocalAddr().String(), notify: make(chan struct{}, 1), done: make(chan struct{})}
	go c.serve()
	return c, nil
}

// login is connect for a test that needs the session: it fails the test
// on error and closes the client at cleanup.
func login(t testing.TB, o dialOpts, full, password string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	c, err := connect(ctx, t, o, full, password)
	if err != nil {
		t.Fatalf("login as %s: %v", full, err)
	}
	if c.jid != full {
		t.Errorf("bound JID = %q, want %q", c.jid, full)
	}
	t.Cleanup(c.close)
	return c
}

func (c *client) serve() {
	defer close(c.done)
	c.serveErr = c.sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		// The decoder must see the start element itself, or it takes the
		// matching end element for a stray one.
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
		if _, err := d.Token(); err != nil {
			return err
		}
		el, err := decodeElement(d, *start)
		if err != nil {
			return err
		}
		// Acknowledge roster and blocklist pushes as RFC 6121 §2.1.6 and
		// XEP-0191 ask; the library would answer any other request with
		// service-unavailable.
		if el.is("", "iq") && el.attr("type") == "set" &&
			(el.child(nsRoster, "query") != nil || el.child(nsBlocking, "block") != nil || el.child(nsBlocking, "unblock") != nil) {
			res := xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{
				{Name: xml.Name{Local: "type"}, Value: "result"},
				{Name: xml.Name{Local: "id"}, Value: el.attr("id")},
			}}
			if err := r.EncodeToken(res); err != nil {
				return err
			}
			if err := r.EncodeToken(res.End()); err != nil {
				return err
			}
		}
		// A client that announced capabilities answers the server's
		// disco#info about them (XEP-0115 §6.2).
		if q := el.child(nsDiscoInfo, "query"); el.is("", "iq") && el.attr("type") == "get" && q != nil {
			c.mu.Lock()
			feats, answered := c.features, c.discoAnswered
			c.mu.Unlock()
			if feats != nil {
				err := answerDisco(r, el.attr("id"), el.attr("from"), q.attr("node"), feats)
				select {
				case answered <- struct{}{}:
				default:
				}
				return err
			}
		}
		c.mu.Lock()
		c.backlog = append(c.backlog, el)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
		return nil
	}))
}

// bindResource is the client side of resource binding (RFC 6120 §7),
// asking for the resource of the session's origin JID. It replaces the
// library's BindResource, which in v0.22.0 sends an empty <resource/> and
// so always gets a server-generated one.
func bindResource() xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, session *xmpp.Session, data any) (xmpp.SessionState, io.ReadWriter, error) {
			w := session.TokenWriter()
			defer w.Close()
			r := session.TokenReader()
			defer r.Close()
			id := newID()
			req := "<iq type='set' id='" + id + "'><bind xmlns='" + nsBind + "'><resource>" +
				xmlEscape(session.LocalAddr().Resourcepart()) + "</resource></bind></iq>"
			if _, err := xmlstream.Copy(w, tokens(req)); err != nil {
				return 0, nil, err
			}
			if err := w.Flush(); err != nil {
				return 0, nil, err
			}
			d := xml.NewTokenDecoder(r)
			tok, err := d.Token()
			if err != nil {
				return 0, nil, err
			}
			start, ok := tok.(xml.StartElement)
			if !ok {
				return 0, nil, fmt.Errorf("bind: got %T", tok)
			}
			resp, err := decodeElement(d, start)
			if err != nil {
				return 0, nil, err
			}
			if !resp.is(nsClient, "iq") || resp.attr("id") != id || resp.attr("type") != "result" {
				return 0, nil, fmt.Errorf("bind refused: %s", resp)
			}
			j, err := jid.Parse(strings.TrimSpace(resp.path("bind", "jid").Text))
			if err != nil {
				return 0, nil, fmt.Errorf("bind result %s: %w", resp, err)
			}
			session.UpdateAddr(j)
			return xmpp.Ready, nil, nil
		},
	}
}

// tokens reads hand-written XML as tokens for the library to send. The
// namespace declarations are dropped: every name carries its resolved
// namespace, from which the encoder declares what is needed.
func tokens(s string) xml.TokenReader {
	return nsTokens{xml.NewDecoder(strings.NewReader(s))}
}

type nsTokens struct{ d *xml.Decoder }

func (r nsTokens) Token() (xml.Token, error) {
	tok, err := r.d.Token()
	if st, ok := tok.(xml.StartElement); ok {
		attrs := make([]xml.Attr, 0, len(st.Attr))
		for _, a := range st.Attr {
			if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
				continue
			}
			attrs = append(attrs, a)
		}
		st.Attr = attrs
		tok = st
	}
	return tok, err
}

// send writes a stanza (XML text without namespace prefixes). It must be
// called from the test's goroutine; others use trySend.
func (c *client) send(stanza string) {
	c.t.Helper()
	if err := c.trySend(stanza); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) trySend(stanza string) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	// Not at once: mellium's Send leaves a goroutine that, if it sees
	// this context done before its own end, sets the connection's
	// deadline in the past; late (a loaded machine), that breaks the
	// next Send with an i/o timeout. It ends within microseconds of Send.
	defer time.AfterFunc(time.Second, cancel)
	if err := c.sess.Send(ctx, tokens(stanza)); err != nil {
		return fmt.Errorf("%s: sending %s: %w", c.jid, stanza, err)
	}
	return nil
}

// iq sends an IQ get or set and returns the response. The IQ gets an id
// if it has none.
func (c *client) iq(iq string) *element {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := c.iqCtx(ctx, iq)
	if err != nil {
		c.t.Fatalf("%s: IQ %s: %v", c.jid, iq, err)
	}
	return resp
}

func (c *client) iqCtx(ctx context.Context, iq string) (*element, error) {
	rc, err := c.sess.SendIQ(ctx, tokens(iq))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	d := xml.NewTokenDecoder(rc)
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, fmt.Errorf("response starts with %T", tok)
	}
	return decodeElement(d, start)
}

// expect waits for a received element that match accepts, takes it from
// the backlog and returns it. Elements that do not match stay for later.
func (c *client) expect(what string, match func(*element) bool) *element {
	c.t.Helper()
	el, ok := c.await(waitTimeout, match)
	if !ok {
		c.mu.Lock()
		var seen []string
		for _, e := range c.backlog {
			seen = append(seen, e.String())
		}
		c.mu.Unlock()
		c.t.Fatalf("%s: no %s within %v; unclaimed: %s; read loop: %v", c.jid, what, waitTimeout, strings.Join(seen, " "), c.readErr())
	}
	return el
}

func (c *client) await(timeout time.Duration, match func(*element) bool) (*element, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i, e := range c.backlog {
			if match(e) {
				c.backlog = append(c.backlog[:i], c.backlog[i+1:]...)
				c.mu.Unlock()
				return e, true
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
			// Look once more: the last elements may have arrived with the end.
			select {
			case <-c.notify:
				continue
			default:
			}
			c.mu.Lock()
			for i, e := range c.backlog {
				if match(e) {
					c.backlog = append(c.backlog[:i], c.backlog[i+1:]...)
					c.mu.Unlock()
					return e, true
				}
			}
			c.mu.Unlock()
			return nil, false
		case <-deadline.C:
			return nil, false
		}
	}
}

// expectNone checks that nothing match accepts arrives within d.
func (c *client) expectNone(what string, d time.Duration, match func(*element) bool) {
	c.t.Helper()
	if el, ok := c.await(d, match); ok {
		c.t.Errorf("%s: unexpected %s: %s", c.jid, what, el)
	}
}

func (c *client) readErr() error {
	select {
	case <-c.done:
		return c.serveErr
	default:
		return errors.New("still reading")
	}
}

// waitStreamError waits for the stream to end and returns the condition of
// the stream error that ended it ("" if none).
func (c *client) waitStreamError(timeout time.Duration) (string, error) {
	select {
	case <-c.done:
	case <-time.After(timeout):
		return "", fmt.Errorf("stream still open after %v", timeout)
	}
	c.close() // answer the server's close, as a client does
	var se stream.Error
	if errors.As(c.serveErr, &se) {
		return se.Err, nil
	}
	return "", c.serveErr
}

// close ends the stream politely and the connection.
func (c *client) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.sess.Close()
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	c.sess.Conn().Close()
}

// Stanza matchers.

func isMessageFrom(from string) func(*element) bool {
	return func(e *element) bool { return e.is("", "message") && e.attr("from") == from }
}

func isPresence(typ, from string) func(*element) bool {
	return func(e *element) bool {
		return e.is("", "presence") && e.attr("type") == typ && e.attr("from") == from
	}
}

func isRosterPush(contact string) func(*element) bool {
	return func(e *element) bool {
		if !e.is("", "iq") || e.attr("type") != "set" {
			return false
		}
		it := e.path("query", "item")
		return it != nil && it.attr("jid") == contact
	}
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
