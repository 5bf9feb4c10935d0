package c2s

import (
	"net"
)

// ConnOptions describe a connection that another transport, such as the
// WebSocket listener (RFC 7395), hands to ServeConn.
type ConnOptions struct {
	// Encrypted says the transport under the stream is already secured
	// (wss://): the stream counts as TLS, so PLAIN is offered where the
	// host allows it. Channel binding is never offered on such a stream:
	// the TLS session belongs to the transport (an HTTP server), not to
	// the stream, so there is nothing to bind to here.
	Encrypted bool
	// Keepalive is the transport listener's keepalive policy; nil takes
	// the server's default.
	Keepalive *KeepalivePolicy
}

// ServeConn serves one XMPP stream on nc and returns when it has ended
// and nc is closed. It is how a transport other than TCP reuses the one
// session implementation: nc carries the stream as RFC 6120 bytes (a
// stream header, top-level elements, the closing tag) and the transport
// translates its own framing at the boundary.
//
// STARTTLS is never offered: the transport decides about TLS (RFC 7395
// §3.1). Without Encrypted the stream is handled like a c2s listener with
// starttls = "disabled": no PLAIN, SCRAM only. Whitespace keepalives are
// written as on TCP, a single space between top-level elements; a
// transport that cannot carry them turns them into its own pings or
// drops them. Shutdown closes these streams like the others.
func (s *Server) ServeConn(nc net.Conn, opts ConnOptions) error {
	c := newConn(s, nc, TLSDisabled)
	c.encrypted = opts.Encrypted
	if opts.Keepalive != nil {
		c.ka = opts.Keepalive
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return net.ErrClosed
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.startKeepalives(c.ka.Load())
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	s.cfg.Observer.ConnOpened()
	defer s.cfg.Observer.ConnClosed()
	c.serve()
	return nil
}

// RateLimitListener applies the per-address connection rate (the
// connections_per_ip limit) at accept, for transports whose connections
// reach ServeConn only after work of their own (a WebSocket's TLS and
// HTTP handshakes): a refused connection is closed before that work. The
// c2s listeners apply the same limit themselves.
func (s *Server) RateLimitListener(l net.Listener) net.Listener {
	if s.cfg.ConnectionRate == nil {
		return l
	}
	return rateListener{l, s}
}

type rateListener struct {
	net.Listener
	s *Server
}

func (l rateListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := nc.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(ip); err == nil {
			ip = h
		}
		if d := l.s.cfg.ConnectionRate.Take(ip); d > 0 {
			l.s.cfg.Log.Debug("connection refused", "remote", nc.RemoteAddr().String(), "reason", "connection rate", "retry_after", retryText(d))
			nc.Close()
			continue
		}
		return nc, nil
	}
}
