package c2s

// Waiting for an idle client. Most sessions are idle most of the time, so
// what one holds while it waits is what 15,000 of them cost: here no read
// buffer (the Reader gave its own back, see xmlstream.Reader.Idle) and a
// goroutine stack the runtime can shrink to its smallest useful size. The
// runtime halves a parked goroutine's stack at a GC only when less than a
// quarter of it is in use, counting 800 bytes of reserve, so a 4 KiB stack
// needs the waiting frames to use under about 1.2 KiB: the wait therefore
// happens in small frames called from the small sessionLoop, never inside
// the XML decoder, a stanza handler's frame or crypto/tls's record reader.

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// waitIdle blocks until the client sends something, the idle timeout
// passes (a timeout error), or Close cuts the wait short with its read
// deadline; a session of a listener may instead park (errParked). With a socket (rc) it waits for the socket to become readable
// and reads nothing, so that a TLS session waits outside crypto/tls, whose
// record reader has deep frames. Without one it reads one byte and hands
// it to the Reader.
func (c *conn) waitIdle(rc syscall.RawConn) error {
	if tc, ok := c.nc.(*tls.Conn); ok && rc != nil {
		// crypto/tls may hold records it read with an earlier one: the
		// socket is then quiet although there is something to read.
		if got, err := c.tlsBuffered(tc); got || err != nil {
			return err
		}
	}
	idle := c.srv.tun().IdleTimeout
	if rc != nil && c.parkable() {
		return c.waitOrPark(rc, idle)
	}
	if idle > 0 && !c.closed.Load() {
		c.nc.SetReadDeadline(time.Now().Add(idle))
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

// tlsBuffered reads what crypto/tls has already received, if anything,
// without waiting for the socket: a read with a deadline in the past
// returns buffered data and otherwise fails with a timeout that crypto/tls
// does not keep (it is temporary). A byte read is handed to the Reader.
func (c *conn) tlsBuffered(tc *tls.Conn) (bool, error) {
	if c.closed.Load() {
		// Close set the read deadline that ends the session; keep it.
		return false, nil
	}
	tc.SetReadDeadline(time.Now().Add(-time.Second))
	n, err := tc.Read(c.one[:])
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
		c.r.Prime(c.one[0])
		return true, nil
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return false, nil
	}
	return false, err
}

// deadlineReader extends the idle deadline on every read, so that any
// traffic from the client, whitespace keepalives included, keeps it alive.
type deadlineReader struct {
	c    *conn
	idle time.Duration
}

func (d deadlineReader) Read(p []byte) (int, error) {
	if d.idle > 0 && !d.c.closed.Load() {
		d.c.nc.SetReadDeadline(time.Now().Add(d.idle))
	}
	n, err := d.c.nc.Read(p)
	if n > 0 {
		d.c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}
