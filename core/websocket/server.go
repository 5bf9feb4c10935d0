// Package websocket is koi's RFC 7395 transport: XMPP over WebSocket, for
// web and JavaScript clients, with XEP-0156 discovery (host-meta) on the
// same HTTP listener.
//
// It is a transport only. Each WebSocket is handed to the c2s server as a
// byte stream (ServeConn), with the framing translated at the boundary:
// <open/> and <close/> become the stream header and footer c2s reads, and
// what c2s writes is split into one message per top-level element. Stream
// negotiation, SASL, binding and routing are the ones every TCP client
// gets. STARTTLS is never offered (RFC 7395 §3.1): a listener with TLS
// serves wss://, and its streams count as encrypted; plain ws:// streams
// do not, so they get SCRAM but no PLAIN.
package websocket

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/c2s"
)

// Subprotocol is the WebSocket subprotocol of XMPP (RFC 7395 §3.1).
const Subprotocol = "xmpp"

// Streams serves one XMPP stream on a byte connection; *c2s.Server does.
type Streams interface {
	ServeConn(nc net.Conn, opts c2s.ConnOptions) error
}

// Config sets up a Server.
type Config struct {
	Log hclog.Logger
	// Path is where the WebSocket endpoint is served, like "/xmpp-websocket".
	Path string
	// PublicURL is the WebSocket URL host-meta advertises; "" builds it
	// from the request's Host, the TLS setting and Path.
	PublicURL string
	// TLS, when set, makes the listener serve https and wss with it.
	TLS *tls.Config
	// Origins are host patterns of other web origins whose pages may open
	// the WebSocket ("chat.example.com", "*.example.com"); a page of the
	// endpoint's own origin always may, a client outside a browser sends
	// no Origin and always may.
	Origins []string
	// MaxMessageBytes bounds one WebSocket message: the stanza size limit.
	MaxMessageBytes int64
	Streams         Streams
	// Keepalive is the listener's keepalive policy (nil: the server's
	// default). Whitespace keepalives become WebSocket pings.
	Keepalive *c2s.KeepalivePolicy
	// Handshakes, if set, bounds the TLS handshakes of a wss listener
	// like those of the c2s listeners (limits.handshake_concurrency), so
	// that a reconnect storm over WebSocket does not starve established
	// sessions either.
	Handshakes Handshakes
}

// Handshakes is a pool of handshake slots (core/admission.Pool).
type Handshakes interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// Server is one WebSocket listener.
type Server struct {
	cfg Config
	hs  *http.Server
	// maxMessage is cfg.MaxMessageBytes, changed by SetMaxMessageBytes.
	maxMessage atomic.Int64

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing bool // Shutdown began: a stream accepted now is turned away
	wg      sync.WaitGroup
}

// New returns a Server; call Serve with its listener.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Path == "" {
		cfg.Path = "/xmpp-websocket"
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 256 << 10
	}
	s := &Server{cfg: cfg, conns: map[*conn]struct{}{}}
	s.maxMessage.Store(cfg.MaxMessageBytes)
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          cfg.Log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	return s
}

// SetMaxMessageBytes changes the bound of one WebSocket message for the
// connections opened from now on (a configuration reload); <= 0 leaves it.
func (s *Server) SetMaxMessageBytes(n int64) {
	if n > 0 {
		s.maxMessage.Store(n)
	}
}

// Serve accepts HTTP connections on l until Shutdown; with Config.TLS
// they speak TLS first.
func (s *Server) Serve(l net.Listener) error {
	if s.cfg.TLS != nil {
		tc := s.cfg.TLS.Clone()
		// HTTP/1.1 only: a WebSocket handshake is an HTTP/1.1 upgrade,
		// which HTTP/2 does not have.
		tc.NextProtos = []string{"http/1.1"}
		l = &tlsListener{Listener: l, cfg: tc, pool: s.cfg.Handshakes, log: s.cfg.Log}
	}
	err := s.hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits, bounded by ctx, for the WebSocket
// streams to end; the c2s server's Shutdown is what closes them (with
// <system-shutdown/> and <close/>), so call both. Streams still open when
// ctx ends are cut.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.hs.Shutdown(ctx)
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.abort()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// ServeHTTP serves the WebSocket endpoint and host-meta.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case s.cfg.Path:
		s.serveWebSocket(w, r)
	case "/.well-known/host-meta":
		s.serveHostMeta(w, r, false)
	case "/.well-known/host-meta.json":
		s.serveHostMeta(w, r, true)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "This is an XMPP WebSocket endpoint (RFC 7395): connect with a WebSocket client and the subprotocol \"xmpp\".", http.StatusUpgradeRequired)
		return
	}
	if !headerHasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
		s.cfg.Log.Debug("WebSocket handshake without the xmpp subprotocol", "remote", r.RemoteAddr, "offered", r.Header.Values("Sec-WebSocket-Protocol"))
		http.Error(w, "RFC 7395 requires the WebSocket subprotocol \"xmpp\": send Sec-WebSocket-Protocol: xmpp.", http.StatusBadRequest)
		return
	}
	// Origin: the library refuses a browser page from an origin other
	// than the Host asked for and those configured (cross-site WebSocket
	// hijacking: the page would act with the user's network position).
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}, OriginPatterns: s.cfg.Origins})
	if err != nil {
		if o := r.Header.Get("Origin"); o != "" && w.Header().Get("Sec-WebSocket-Accept") == "" {
			// Most likely a page of an origin not in origins: an operator
			// setting up a web client needs to see this.
			s.cfg.Log.Info("WebSocket handshake refused", "remote", r.RemoteAddr, "origin", o, "error", err)
		} else {
			s.cfg.Log.Debug("WebSocket handshake refused", "remote", r.RemoteAddr, "error", err)
		}
		return // Accept has answered
	}
	var local net.Addr = addr("")
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a
	}
	c := newConn(ws, s.maxMessage.Load(), addr(r.RemoteAddr), local)
	s.mu.Lock()
	if s.closing {
		// Shutdown is waiting for the streams: one more must not join
		// its wait (nor would the c2s server, shutting down too, take
		// it).
		s.mu.Unlock()
		ws.Close(websocket.StatusGoingAway, "the server is shutting down")
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	// The request's context ends when the handler returns, and the
	// hijacked connection is ours: c lives by its own context.
	if err := s.cfg.Streams.ServeConn(c, c2s.ConnOptions{Encrypted: r.TLS != nil, Keepalive: s.cfg.Keepalive}); err != nil {
		s.cfg.Log.Debug("WebSocket stream not served", "remote", r.RemoteAddr, "error", err)
	}
	c.Close()
	<-c.done
}

// headerHasToken reports whether one of the comma-separated values of the
// header key is token (case-insensitively, as RFC 6455 compares both the
// Upgrade value and, in practice, subprotocol names).
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
