package c2s

// Waiting for an idle client. Most sessions are idle most of the time, so
// what one holds while it waits is what 15,000 of them cost: here no read
// buffer (the Reader gave its own back, see xmlstream.Reader.Idle) and a
// goroutine stack the runtime can shrink to its smallest useful size. The
// runtime halves a parked goroutine's stack at a GC only when less than a
// quarter of it is in use, counting 800 bytes of reserve, so a 4 KiB stack
// needs the waiting frames to use under about 1.2 KiB: a long wait therefore
// happens in small frames called from the small sessionLoop, never inside
// the XML decoder, a stanza handler's frame or crypto/tls's record reader.
// A session of a listener waits there only until it parks, a second at
// most (waitOrPark): a parked session has no goroutine and no stack.

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// waitIdle blocks until the client sends something and the Reader has
// read it (xmlstream.Reader.Ready), the idle timeout passes (a timeout
// error), or Close cuts the wait short with its read deadline; a session
// of a listener may instead park (errParked), waiting in waitOrPark. Any
// other session waits here in shallow frames: with a socket (rc) it waits
// for the socket to become readable and reads nothing, so that a TLS
// session waits outside crypto/tls, whose record reader has deep frames;
// without one it reads one byte and hands it to the Reader. Then the
// Reader reads once: what that brings is parsed without going back to the
// socket.
func (c *conn) waitIdle(rc syscall.RawConn) error {
	idle := c.srv.tun().IdleTimeout
	if rc != nil && c.parkable() {
		return c.waitOrPark(rc, idle)
	}
	if err := c.waitReadable(rc, idle); err != nil {
		return err
	}
	return c.r.Ready()
}

// waitReadable is waitIdle's wait for a session that does not park.
func (c *conn) waitReadable(rc syscall.RawConn, idle time.Duration) error {
	if _, ok := c.nc.(*tls.Conn); ok && rc != nil {
		// crypto/tls may hold records it read with an earlier one: the
		// socket is then quiet although there is something to read.
		if got, err := c.tlsBuffered(); got || err != nil {
			return err
		}
	}
	if idle > 0 && !c.closed.Load() {
		c.setReadDeadline(time.Now().Add(idle))
	}
	if rc != nil {
		return rc.Read(readable)
	}
	for {
		n, err := c.nc.Read(c.one[:])
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			c.r.Prime(c.one[0])
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// tlsBuffered has the Reader read what crypto/tls has already received,
// if anything, without waiting for the socket: a read with a deadline in
// the past returns buffered data and otherwise fails with a timeout that
// crypto/tls does not keep (it is temporary).
func (c *conn) tlsBuffered() (bool, error) {
	if c.closed.Load() {
		// Close set the read deadline that ends the session; keep it.
		return false, nil
	}
	c.setReadDeadline(time.Now().Add(-time.Second))
	c.ownDeadline = true // deadlineReader leaves the past deadline alone
	err := c.r.Ready()
	c.ownDeadline = false
	var ne net.Error
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return false, nil
	}
	return false, err
}

// deadlineReader keeps the idle deadline ahead of every read, so that any
// traffic from the client, whitespace keepalives included, keeps it alive.
// Moving a deadline resets a runtime timer, too dear for every read of a
// busy session: the deadline is set a little further out (slack) and
// moved only once it is that stale, so the idle timeout fires between
// idle and idle+slack after the last read.
type deadlineReader struct {
	c    *conn
	idle time.Duration
}

// deadlineSlack is how stale the idle deadline may get before a read moves
// it: idle/64, at most a second.
func deadlineSlack(idle time.Duration) time.Duration { return min(idle/64, time.Second) }

func (d deadlineReader) Read(p []byte) (int, error) {
	switch {
	case d.c.ownDeadline || d.c.closed.Load():
	case d.idle > 0:
		// Measured from the last read, which ended at most a few
		// statements ago on a busy session, so that the common case
		// needs no clock: a deadline idle to idle+slack after it stands.
		// Stale, or further out (set for a longer idle or for something
		// else, such as a wait), it moves.
		slack := deadlineSlack(d.idle)
		if left := time.Duration(d.c.rdl - d.c.lastRead.Load()); left < d.idle || left > d.idle+slack {
			d.c.setReadDeadline(time.Now().Add(d.idle + slack))
		}
	case d.c.rdl != 0:
		// A wait's deadline: without an idle timeout a read has none.
		d.c.setReadDeadline(time.Time{})
	}
	n, err := d.c.nc.Read(p)
	if n > 0 {
		d.c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// setReadDeadline moves the read deadline of the session's own goroutine
// and notes it for deadlineReader. (Close moves it from elsewhere, but a
// closed session's reads move it no more.)
func (c *conn) setReadDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	c.rdl = 0
	if !t.IsZero() {
		c.rdl = t.UnixNano()
	}
}
