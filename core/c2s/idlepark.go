package c2s

// Parking an idle session. A session that has been quiet for parkAfter
// gives up its goroutine: its socket is armed in the server's
// idlepoll.Poller and the goroutine returns. When the socket becomes
// readable (or the peer goes), the poller wakes the connection and a new
// goroutine carries on with the same conn, Reader and session. Close, a
// failed write and the idle timeout take a parked session back through
// unpark, so that it ends as it would have with its goroutine. At 15,000
// idle sessions this saves each one its goroutine and stack.
//
// One goroutine at a time runs a session: the poller's token decides who
// resumes it (idlepoll.Poller.Cancel or the poller itself, never both).

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/koi-im/koi/core/idlepoll"
)

// parkAfter is how long a session waits for its client with a goroutine
// before it parks: a session between two messages of a conversation
// keeps it (parking costs a few system calls and a goroutine start).
const parkAfter = time.Second

// errParked ends a session goroutine whose session goes on without it.
var errParked = errors.New("session parked")

// parking is a conn's part in parking.
type parking struct {
	// onEnd runs once the connection has ended (the listener's
	// bookkeeping). Only a connection with one parks: ServeConn's caller
	// waits for the end in its own goroutine.
	onEnd func()
	tok   atomic.Uint64 // the token of the last park; stale once resumed
	timer *time.Timer   // the idle timeout while parked
	ctx   *sessionCtx   // the stanza handlers' context, for the whole session
}

// context returns the session's context, made once: it outlives parks.
func (p *parking) context() *sessionCtx {
	if p.ctx == nil {
		p.ctx = &sessionCtx{}
	}
	return p.ctx
}

// idlePoller returns the server's poller, started on first use, or nil
// where there is none (then sessions wait with their goroutines).
func (s *Server) idlePoller() *idlepoll.Poller {
	s.pollOnce.Do(func() {
		p, err := idlepoll.New()
		if err != nil {
			if !errors.Is(err, idlepoll.ErrUnsupported) {
				s.cfg.Log.Warn("idle sessions keep their goroutines", "error", err)
			}
			return
		}
		s.poller.Store(p)
	})
	return s.poller.Load()
}

// closePoller stops the poller, if one started.
func (s *Server) closePoller() {
	s.pollOnce.Do(func() {}) // none may start from here on
	if p := s.poller.Load(); p != nil {
		p.Close()
	}
}

// ParkedSessions returns how many idle sessions wait without a goroutine.
func (s *Server) ParkedSessions() int {
	if p := s.poller.Load(); p != nil {
		return p.Waiting()
	}
	return 0
}

func (c *conn) parkable() bool {
	return c.park.onEnd != nil && c.srv.idlePoller() != nil
}

// resume runs the session loop on the calling goroutine until the session
// ends, or parks.
func (c *conn) resume() {
	err := c.sessionLoop()
	if errors.Is(err, errParked) {
		// Another goroutine may own the conn already: touch nothing.
		return
	}
	c.end(err)
}

// end closes the connection after its read loop ended with err (nil: it
// never started, the TLS handshake failed).
func (c *conn) end(err error) {
	if c.park.ctx != nil {
		c.park.ctx.cancel()
	}
	if err != nil {
		c.handleReadError(err)
	}
	c.finish()
	if c.park.timer != nil {
		c.park.timer.Stop()
	}
	if c.park.onEnd != nil {
		c.park.onEnd()
	}
}

// Wake is the poller telling a parked session that its client sent
// something or went away.
func (c *conn) Wake() { go c.resume() }

// unpark takes a parked session back so that it sees what changed (a
// close, a lost write, the idle timeout); a session that is not parked
// sees it by itself.
func (c *conn) unpark() {
	p := c.srv.poller.Load()
	if p == nil {
		return
	}
	if t := c.park.tok.Load(); t != 0 && p.Cancel(idlepoll.Token(t)) {
		go c.resume()
	}
}

// waitOrPark waits for the client for up to parkAfter with the goroutine,
// then parks the session. It returns nil when the Reader has read
// something (or, closing, when the next read ends the session), errParked
// when parked, an error when the idle timeout passed or the read failed.
//
// It waits in the read itself (xmlstream.Reader.Ready): a socket read,
// the poller, the read again, with no peek before it and, over TLS, no
// probe of crypto/tls's held records, which the read returns at once.
// Those frames are deeper than waitIdle's, but a session waits in them
// for a second at most: then it parks and has no stack at all.
func (c *conn) waitOrPark(rc syscall.RawConn, idle time.Duration) error {
	now := time.Now()
	quiet := time.Duration(now.UnixNano() - c.lastRead.Load())
	if idle > 0 && quiet >= idle && !c.closed.Load() {
		return os.ErrDeadlineExceeded
	}
	wait := parkAfter
	if idle > 0 && idle-quiet < wait {
		wait = idle - quiet
	}
	if !c.closed.Load() {
		// One set a moment ago does: a busy session waits many times a
		// second, and moving a deadline resets a runtime timer.
		if d := now.Add(wait).UnixNano(); c.rdl > d || c.rdl < d-int64(parkAfter/64) {
			c.setReadDeadline(now.Add(wait))
		}
	}
	c.ownDeadline = true // deadlineReader leaves the wait's deadline alone
	err := c.r.Ready()
	c.ownDeadline = false
	if c.closed.Load() || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return c.parkNow(rc, idle)
}

// parkNow arms the socket and lets the goroutine go. Whatever may resume
// the session is set up before the socket is armed: after that, another
// goroutine may already be running it.
func (c *conn) parkNow(rc syscall.RawConn, idle time.Duration) error {
	p := c.srv.idlePoller()
	var expires time.Time
	if idle > 0 {
		expires = time.Unix(0, c.lastRead.Load()).Add(idle)
		if c.park.timer == nil {
			c.park.timer = time.AfterFunc(time.Until(expires), c.unpark)
		} else {
			c.park.timer.Reset(time.Until(expires))
		}
	}
	t := p.Token()
	c.park.tok.Store(uint64(t))
	if err := p.Wait(rc, t, c); err != nil {
		// Not armed (the socket is closing, or the poller is gone): wait
		// the old way.
		c.park.tok.Store(0)
		if !c.closed.Load() {
			c.setReadDeadline(expires)
		}
		return rc.Read(readable)
	}
	// Close and the timer may have come before the token could be found.
	switch {
	case c.closed.Load() && p.Cancel(t):
		return nil // the next read ends the session
	case idle > 0 && !time.Now().Before(expires) && p.Cancel(t):
		return os.ErrDeadlineExceeded
	}
	return errParked
}

// parkState is the server's part: the poller, started by the first park.
type parkState struct {
	pollOnce sync.Once
	poller   atomic.Pointer[idlepoll.Poller]
}
