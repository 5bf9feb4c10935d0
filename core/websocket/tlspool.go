package websocket

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// handshakeTimeout bounds a wss client's TLS handshake, the wait for a
// slot included.
const handshakeTimeout = 30 * time.Second

// tlsListener serves TLS like tls.NewListener, except that each
// connection's handshake is done here, in its own goroutine and in a slot
// of the handshake pool, before the HTTP server sees the connection: it
// gets a *tls.Conn whose handshake is over (net/http recognises TLS by
// that type, so a wrapper would hide it).
type tlsListener struct {
	net.Listener
	cfg  *tls.Config
	pool Handshakes // nil: no bound
	log  hclog.Logger

	start sync.Once
	ready chan *tls.Conn
	done  chan struct{} // closed when the accept loop ends
	err   error         // why it ended, read after done
}

func (l *tlsListener) Accept() (net.Conn, error) {
	l.start.Do(func() {
		l.ready = make(chan *tls.Conn)
		l.done = make(chan struct{})
		go l.loop()
	})
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

func (l *tlsListener) loop() {
	defer close(l.done)
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			l.err = err
			return
		}
		go l.handshake(nc)
	}
}

func (l *tlsListener) handshake(nc net.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	release := func() {}
	if l.pool != nil {
		r, err := l.pool.Acquire(ctx)
		if err != nil {
			l.log.Debug("wss handshake refused", "remote", nc.RemoteAddr().String(), "error", err)
			nc.Close()
			return
		}
		release = r
	}
	tc := tls.Server(nc, l.cfg)
	err := tc.HandshakeContext(ctx)
	release()
	if err != nil {
		l.log.Debug("wss TLS handshake failed", "remote", nc.RemoteAddr().String(), "error", err)
		nc.Close()
		return
	}
	select {
	case l.ready <- tc:
	case <-l.done:
		tc.Close()
	}
}
