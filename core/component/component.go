// Package component is the server side of the Jabber Component Protocol
// (XEP-0114): trusted external services (gateways, bots, transports)
// connect to a component listener, authenticate their domain with a
// shared secret, and then exchange stanzas with the server's users.
//
// It answers the jabber:component:accept namespace. Each configured domain
// is an Endpoint that the server registers on its component seam for as
// long as koi runs: a stanza for a domain whose component is not connected
// bounces with <service-unavailable/> rather than going nowhere, and the
// host's disco#items lists the service either way (as Prosody does).
//
// Refusals follow Prosody's mod_component: a stream header without 'to'
// gets <improper-addressing/>, an unconfigured domain <host-unknown/>, a
// wrong handshake <not-authorized/>, a second connection for a connected
// domain <conflict/> (unless the component is set to replace the old one),
// a stanza whose 'from' is not at the component's domain <invalid-from/>,
// and a stanza without 'to' a <bad-request/> error stanza.
package component

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/xmlstream"
)

// NSAccept is the content namespace of a component stream.
const NSAccept = "jabber:component:accept"

// Router delivers what a component sends: the server's component seam
// (modules.Server.Route). el's from is at the component's domain and its
// namespace is jabber:client.
type Router interface {
	Route(ctx context.Context, el *xmlstream.Element)
}

// Guard throttles handshakes after wrong secrets, per source address and
// per domain from one address (throttle.Guard, shared with client logins).
type Guard interface {
	CheckAddress(addr string) (retryAfter time.Duration, ok bool)
	CheckAccount(addr, account string) (retryAfter time.Duration, ok bool)
	Failed(addr, account string)
	Succeeded(addr, account string)
}

// Observer is told about handshakes, connections and stanzas, for
// metrics. Calls must be cheap and must not block.
type Observer interface {
	// ComponentHandshake reports a handshake's outcome: "success",
	// "failure" (wrong secret, unknown domain, a malformed handshake) or
	// "refused" (throttled, or the domain already connected).
	ComponentHandshake(result string)
	// ComponentConnected reports a component domain going up or down.
	ComponentConnected(domain string, up bool)
	// ComponentStanza reports a stanza from (in) or to a component.
	ComponentStanza(domain string, in bool, local string)
}

// Handshake results for Observer.ComponentHandshake.
const (
	HandshakeSuccess = "success"
	HandshakeFailure = "failure"
	HandshakeRefused = "refused"
)

// Spec is one configured component.
type Spec struct {
	Domain string
	Secret string
	// Replace makes a new, authenticated connection for a connected domain
	// close the old one with <conflict/>; by default the new one is
	// refused and the old one keeps serving (Prosody's kick_new).
	Replace bool
}

// KeepaliveMode is what a component link silent for a while gets.
type KeepaliveMode uint8

const (
	// KeepaliveWhitespace sends a space: a dead link shows up when the
	// write fails.
	KeepaliveWhitespace KeepaliveMode = iota
	// KeepalivePing sends an XEP-0199 ping and closes the stream with
	// <connection-timeout/> when nothing comes back within Timeout.
	KeepalivePing
	// KeepaliveOff sends nothing.
	KeepaliveOff
)

// Keepalive is a listener's keepalive policy. Components are long-lived
// and often silent, so an authenticated component is never closed for
// being idle: keepalives are what finds a dead link.
type Keepalive struct {
	Mode     KeepaliveMode
	Interval time.Duration // silence before a keepalive; 0 turns them off
	Timeout  time.Duration // ping mode: time to answer
}

// Config sets up a Server.
type Config struct {
	Log        hclog.Logger
	Components []Spec
	// Hosts are the served virtual hosts; a keepalive ping comes from the
	// host the component is a subdomain of, else from the first.
	Hosts     []string
	Router    Router
	Limits    xmlstream.Limits
	SendQueue int // stanzas queued for a component; default 8192
	// AuthTimeout bounds the time from connect to a successful
	// handshake (TLS included); default 30s.
	AuthTimeout time.Duration
	Guard       Guard
	Observer    Observer
}

// Server runs the component listeners.
type Server struct {
	cfg Config
	eps map[string]*Endpoint

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup
}

// DefaultSendQueue is the stanzas queued for a component before further
// ones bounce with <resource-constraint/>. A gateway serves many users, so
// it is larger than a client's.
const DefaultSendQueue = 8192

// DefaultAuthTimeout is the time a new connection has to complete its
// handshake.
const DefaultAuthTimeout = 30 * time.Second

// New returns a Server for the components of cfg; call Serve for each
// listener and register each of Endpoints on the component seam.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = DefaultSendQueue
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	if cfg.Router == nil {
		return nil, errors.New("component: no router")
	}
	s := &Server{cfg: cfg, eps: map[string]*Endpoint{}, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
	for _, sp := range cfg.Components {
		d := strings.ToLower(sp.Domain)
		if d == "" || sp.Secret == "" {
			return nil, fmt.Errorf("component %q: a domain and a secret are required", sp.Domain)
		}
		if s.eps[d] != nil {
			return nil, fmt.Errorf("component %q: configured twice", sp.Domain)
		}
		s.eps[d] = &Endpoint{srv: s, domain: d, secret: sp.Secret, replace: sp.Replace, pingFrom: pingFrom(d, cfg.Hosts)}
	}
	return s, nil
}

// Update applies a reloaded configuration of the same components: new
// handshakes use the new secrets and replace settings; connected
// components stay connected. Adding or removing a domain needs a restart,
// and is refused with nothing changed.
func (s *Server) Update(specs []Spec) error {
	if len(specs) != len(s.eps) {
		return errors.New("component: the set of component domains changed")
	}
	for _, sp := range specs {
		if s.eps[strings.ToLower(sp.Domain)] == nil || sp.Secret == "" {
			return fmt.Errorf("component %q: not a component koi started with, or no secret", sp.Domain)
		}
	}
	for _, sp := range specs {
		e := s.eps[strings.ToLower(sp.Domain)]
		e.mu.Lock()
		e.secret, e.replace = sp.Secret, sp.Replace
		e.mu.Unlock()
	}
	return nil
}

// pingFrom picks the address keepalive pings to domain come from.
func pingFrom(domain string, hosts []string) string {
	for _, h := range hosts {
		if strings.HasSuffix(domain, "."+h) {
			return h
		}
	}
	if len(hosts) > 0 {
		return hosts[0]
	}
	return domain
}

// Endpoints returns the configured components, sorted by domain.
func (s *Server) Endpoints() []*Endpoint {
	out := make([]*Endpoint, 0, len(s.eps))
	for _, e := range s.eps {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].domain < out[j].domain })
	return out
}

// Serve accepts component connections on l until Shutdown. With tlsCfg
// set, TLS starts at connect (XEP-0114 itself is plaintext, so a
// listener on another machine's reach should use it).
func (s *Server) Serve(l net.Listener, tlsCfg *tls.Config, ka Keepalive) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.cfg.Log.Warn("accept failed", "address", l.Addr().String(), "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := newConn(s, nc, tlsCfg, ka)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, closes every component stream with
// <system-shutdown/> and </stream:stream>, and waits (bounded by ctx) for
// the connections to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close("system-shutdown", "")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return fmt.Errorf("component connections still open: %w", ctx.Err())
	}
}

type nopObserver struct{}

func (nopObserver) ComponentHandshake(string)            {}
func (nopObserver) ComponentConnected(string, bool)      {}
func (nopObserver) ComponentStanza(string, bool, string) {}
