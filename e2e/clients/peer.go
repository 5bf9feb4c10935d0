package clients

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// peer is the reference client every run talks to, built on
// mellium.im/xmpp (the library koi's own end-to-end tests use): it logs in
// once with STARTTLS, trusting koi's certificate, sends its presence, and
// answers every chat message with "re: "+body to the sender's full JID. It
// remembers what it got so that the test can check a client's message
// arrived even when the client cannot receive the answer.
type peer struct {
	sess *xmpp.Session
	done chan struct{} // closed when the session ends
	err  error         // why it ended, valid after done

	mu     sync.Mutex
	got    map[string][]string // bare JID of the sender -> bodies
	notify chan struct{}       // signalled on every arrival
}

// dialPeer logs in as addr (a bare JID) over STARTTLS at hostport.
func dialPeer(ctx context.Context, hostport, addr, password string, tc *tls.Config) (*peer, error) {
	origin, err := jid.Parse(addr)
	if err != nil {
		return nil, err
	}
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	sess, err := xmpp.NewClientSession(ctx, origin, nc,
		xmpp.StartTLS(tc), xmpp.SASL("", password, sasl.ScramSha256), xmpp.BindResource())
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("peer: logging in as %s: %w", addr, err)
	}
	p := &peer{sess: sess, done: make(chan struct{}), got: make(map[string][]string), notify: make(chan struct{}, 1)}
	// Available, so that messages to the bare JID reach this resource.
	if err := sess.Send(ctx, stanza.Presence{}.Wrap(nil)); err != nil {
		sess.Close()
		return nil, fmt.Errorf("peer: initial presence: %w", err)
	}
	go func() {
		defer close(p.done)
		p.err = sess.Serve(xmpp.HandlerFunc(p.handle))
	}()
	return p, nil
}

// handle answers chat and normal messages with a body; everything else is
// left to the library (which answers requests with service-unavailable).
func (p *peer) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "message" {
		return nil
	}
	var m struct {
		From string `xml:"from,attr"`
		Type string `xml:"type,attr"`
		Body string `xml:"body"`
	}
	// The decoder must see the start element itself, or it takes the
	// matching end element for a stray one.
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
	if err := d.Decode(&m); err != nil {
		return err
	}
	if m.Body == "" || (m.Type != "chat" && m.Type != "normal" && m.Type != "") {
		return nil
	}
	from, err := jid.Parse(m.From)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	p.got[from.Bare().String()] = append(p.got[from.Bare().String()], m.Body)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
	reply := stanza.Message{To: from, Type: stanza.ChatMessage}.Wrap(
		xmlstream.Wrap(xmlstream.Token(xml.CharData("re: "+m.Body)), xml.StartElement{Name: xml.Name{Local: "body"}}))
	_, err = xmlstream.Copy(t, reply)
	return err
}

// waitFor reports whether a message with body from the bare JID from has
// arrived, waiting up to d for it.
func (p *peer) waitFor(from, body string, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for _, b := range p.got[from] {
			if b == body {
				p.mu.Unlock()
				return true
			}
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-p.done:
			return false
		case <-deadline.C:
			return false
		}
	}
}

// received lists what arrived from the bare JID from, for error messages.
func (p *peer) received(from string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%q", p.got[from])
}

// alive returns why the peer's session ended, or nil while it runs.
func (p *peer) alive() error {
	select {
	case <-p.done:
		if p.err == nil {
			return fmt.Errorf("peer: session ended")
		}
		return fmt.Errorf("peer: session ended: %w", p.err)
	default:
		return nil
	}
}

// close ends the stream politely and waits briefly for the read loop.
func (p *peer) close() {
	p.sess.Close()
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
}
