// Package c2s accepts client connections and negotiates XMPP streams
// (RFC 6120): STARTTLS or direct TLS (XEP-0368), SASL, resource binding.
// Once a session is bound it hands every stanza to a Handler.
package c2s

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/admission"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/sm"
	"github.com/koi-im/koi/core/throttle"
	"github.com/koi-im/koi/core/tlscb"
	"github.com/koi-im/koi/core/xmlstream"
)

// TLSMode says whether a plain listener offers STARTTLS.
type TLSMode int

const (
	// TLSRequired offers STARTTLS and refuses everything else before it.
	TLSRequired TLSMode = iota
	// TLSOptional offers STARTTLS but lets the client continue without it.
	TLSOptional
	// TLSDisabled never offers STARTTLS.
	TLSDisabled
	// TLSDirect is a listener where TLS starts at connect (XEP-0368).
	TLSDirect
)

// Host is a virtual host as the connection layer needs it.
type Host interface {
	// Name is the domain the host serves.
	Name() string
	// SASLStore gives the mechanisms access to the host's accounts.
	SASLStore() sasl.Store
	// SCRAM reports whether the host's auth backends keep SCRAM credentials.
	SCRAM() bool
	// ChannelBinding is the host's channel_binding mode: sasl.CBPrefer
	// (also ""), sasl.CBRequire or sasl.CBOff.
	ChannelBinding() string
	// RegistrationOpen reports whether in-band registration (XEP-0077) is
	// offered to clients that have not logged in.
	RegistrationOpen() bool
	// PreAuthIQ answers an IQ sent before authentication (in-band
	// registration); it returns the reply stanza.
	PreAuthIQ(ctx context.Context, iq *xmlstream.Element, remote string) *xmlstream.Element
}

// Handler processes the stanzas of bound sessions.
type Handler interface {
	// Stanza handles one stanza from s. The stanza's from has been stamped.
	Stanza(ctx context.Context, s *router.Session, el *xmlstream.Element)
	// Closed is called once when a bound session ends, after it was unbound
	// (replaced is true when a newer session took its resource).
	Closed(ctx context.Context, s *router.Session)
}

// Config sets up a Server.
type Config struct {
	Log               hclog.Logger
	TLS               *tls.Config
	Limits            xmlstream.Limits
	IdleTimeout       time.Duration
	KeepaliveInterval time.Duration
	SendQueue         int
	// Host returns the virtual host for a stream's to attribute, nil when
	// the domain is not served.
	Host    func(domain string) Host
	Router  *router.Router
	Handler Handler
	// Guard throttles logins after wrong credentials; nil disables.
	Guard *throttle.Guard
	// Registrations limits in-band registrations per source address; nil
	// disables.
	Registrations *throttle.Limiter
	// SM configures stream management (XEP-0198).
	SM SMConfig
	// Undelivered takes what sessions with stream management were sent
	// but never acknowledged; nil drops it.
	Undelivered Undelivered
	// ConnectionRate limits new connections per source address (Take is
	// called at accept); nil disables.
	ConnectionRate *throttle.Limiter
	// LoginRate limits SASL attempts per source address; nil disables.
	LoginRate *throttle.Limiter
	// Handshakes bounds how many TLS handshakes and SASL steps run at
	// once; nil runs them all at once.
	Handshakes *admission.Pool
	// Carbons enables message carbons for Bind 2's inline <enable/>; nil
	// leaves carbons out of Bind 2.
	Carbons Carbons
	// Observer is told about connections, logins and stanzas (metrics);
	// nil observes nothing.
	Observer Observer
}

// Server runs the c2s listeners.
type Server struct {
	cfg    Config
	keyLog *tlscb.KeyLog // nil without TLS

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup

	keepaliveOnce sync.Once
	keepaliveTick atomic.Int64  // the sweep's period: a quarter of the shortest interval
	keepaliveKick chan struct{} // the period got shorter
	stop          chan struct{}

	smReg     *sm.Registry[*smSession] // resumable sessions (XEP-0198)
	parkState                          // idle sessions parked without a goroutine (idlepark.go)

	bufs      bufPool                  // send buffers of sessions that are writing (sendqueue.go)
	tunables  atomic.Pointer[Tunables] // see SetTunables
	defaultKA *KeepalivePolicy         // Config.KeepaliveInterval, for Serve and ServeConn
}

// New returns a Server; call Serve for each listener.
func New(cfg Config) *Server {
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 1024
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	var keyLog *tlscb.KeyLog
	if cfg.TLS != nil && cfg.TLS.KeyLogWriter == nil {
		// For the TLS 1.3 client Finished that OpenSSL-based clients bind
		// to as "tls-unique" (see package tlscb).
		keyLog = tlscb.NewKeyLog()
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.KeyLogWriter = keyLog
	}
	// One config for every connection, recording which certificate each
	// handshake sent (for tls-server-end-point).
	cfg.TLS = tlscb.RecordServed(cfg.TLS)
	s := &Server{cfg: cfg, keyLog: keyLog, listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}, stop: make(chan struct{}),
		keepaliveKick: make(chan struct{}, 1), smReg: sm.NewRegistry[*smSession]()}
	s.SetTunables(Tunables{Limits: cfg.Limits, IdleTimeout: cfg.IdleTimeout, SendQueue: cfg.SendQueue})
	s.defaultKA = NewKeepalivePolicy(Keepalive{Mode: KeepaliveWhitespace, Interval: cfg.KeepaliveInterval})
	return s
}

// Serve accepts connections on l until Shutdown. mode selects STARTTLS
// behaviour, or direct TLS. Connections get whitespace keepalives every
// Config.KeepaliveInterval; ServeListener chooses otherwise.
func (s *Server) Serve(l net.Listener, mode TLSMode) error {
	return s.ServeListenerPolicy(l, mode, s.defaultKA)
}

// ServeListener is Serve with the listener's own keepalive policy.
func (s *Server) ServeListener(l net.Listener, mode TLSMode, ka Keepalive) error {
	return s.ServeListenerPolicy(l, mode, NewKeepalivePolicy(ka))
}

// ServeListenerPolicy is ServeListener with a policy a reload may change
// (SetKeepalive).
func (s *Server) ServeListenerPolicy(l net.Listener, mode TLSMode, ka *KeepalivePolicy) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.startKeepalives(ka.Load())
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
			// Out of file descriptors and the like: wait and retry
			// rather than spin or die.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			s.cfg.Log.Warn("accept failed", "address", l.Addr().String(), "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := newConn(s, nc, mode)
		c.ka = ka
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		forget := func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			s.wg.Done()
		}
		go func() {
			if !c.admitConnection() {
				forget()
				return
			}
			s.cfg.Observer.ConnOpened()
			// serve may return while the session goes on, parked: the
			// end runs on whichever goroutine it ends on.
			c.park.onEnd = func() {
				s.cfg.Observer.ConnClosed()
				forget()
			}
			c.serve()
		}()
	}
}

// Shutdown stops accepting, closes every stream with <system-shutdown/>
// and waits (bounded by ctx) for the connections to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.stop)
	}
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
		// Sessions waiting for a resumption will not get one: their
		// unacknowledged stanzas go to offline storage now, while the
		// backends are still up.
		s.endDetached()
		s.closePoller()
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.transport().Close()
		}
		s.mu.Unlock()
		s.endDetached()
		s.closePoller()
		return ctx.Err()
	}
}
