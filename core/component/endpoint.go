package component

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Endpoint is one configured component domain, connected or not. It is
// what the server's component seam delivers the domain's stanzas to.
type Endpoint struct {
	srv      *Server
	domain   string
	pingFrom string

	mu      sync.Mutex           // serialises attach and detach; guards secret and replace
	secret  string               // a reload may change it
	replace bool                 // a reload may change it
	conn    atomic.Pointer[conn] // the authenticated connection, nil while down
}

// currentSecret is the secret new handshakes are checked against.
func (e *Endpoint) currentSecret() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.secret
}

// Domain is the component's domain.
func (e *Endpoint) Domain() string { return e.domain }

// Connected reports whether a component serves the domain now.
func (e *Endpoint) Connected() bool { return e.conn.Load() != nil }

// Deliver queues el for the component. While no component is connected,
// or when it does not keep up, el bounces to its sender. It never blocks:
// it runs on the sender's goroutine.
func (e *Endpoint) Deliver(ctx context.Context, el *xmlstream.Element) {
	c := e.conn.Load()
	if c == nil {
		e.bounce(ctx, el, stanza.ErrServiceUnavailable.WithText(e.domain+" is not connected"))
		return
	}
	// On the component's stream the default namespace is
	// jabber:component:accept: written with jabber:client as the parent
	// namespace, the stanza and everything in jabber:client inside it
	// carry no declaration and so land in the stream's namespace.
	b := el.AppendXML(make([]byte, 0, 256), xmlstream.NSClient)
	switch c.send(b) {
	case sent:
		e.srv.cfg.Observer.ComponentStanza(e.domain, false, el.Local)
	case gone:
		e.bounce(ctx, el, stanza.ErrServiceUnavailable.WithText(e.domain+" is not connected"))
	case full:
		e.bounce(ctx, el, stanza.ErrResourceConstraint.WithText(e.domain+" is not keeping up; try again later"))
	}
}

// bounce answers el with an error from the component's domain, through
// the same routing as the component's own stanzas. Errors and results are
// never answered (RFC 6120 §8.3.1), nor presence that expects no answer.
func (e *Endpoint) bounce(ctx context.Context, el *xmlstream.Element, err *stanza.Error) {
	typ := el.Attr("type")
	switch el.Local {
	case "message":
		if typ == "error" {
			return
		}
	case "iq":
		if typ != "get" && typ != "set" {
			return
		}
	case "presence":
		// Available presence and requests get an error; unavailable,
		// (un)subscribed and the like have nobody waiting for an answer.
		if typ != "" && typ != "subscribe" && typ != "probe" {
			return
		}
	default:
		return
	}
	if el.Attr("from") == "" {
		return
	}
	e.srv.cfg.Router.Route(ctx, stanza.ErrorReply(el, err))
}

// attach makes c the domain's connection. A connected domain refuses c
// unless the component replaces old connections; then the old one is
// returned, to be closed. hello goes out first, and only once c serves the
// domain: nothing routed to c overtakes it, and a component that read it
// is connected.
func (e *Endpoint) attach(c *conn, hello []byte) (ok bool, old *conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old = e.conn.Load()
	if old != nil && !e.replace {
		return false, nil
	}
	c.hold()
	c.enqueue(hello, true)
	e.conn.Store(c)
	c.release()
	return true, old
}

// detach forgets c if it is still the domain's connection, and reports
// whether it was.
func (e *Endpoint) detach(c *conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn.Load() != c {
		return false
	}
	e.conn.Store(nil)
	return true
}
