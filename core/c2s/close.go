package c2s

// How a stream ends: what ended the read loop becomes the right stream
// error, Close queues the closing bytes, and finish writes them out and
// releases the connection and the session.

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/koi-im/koi/core/linger"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// handleReadError turns what ended the read loop into the right stream
// error, if one is still owed to the peer.
func (c *conn) handleReadError(err error) {
	var xe *xmlstream.Error
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, errStreamClosing):
		// A write that failed closed the stream under the reader: the
		// peer vanished, as for a read error, and stream management
		// keeps the session.
		c.lost = c.writeLost.Load() && !c.errorSent.Load()
	case errors.Is(err, xmlstream.ErrStreamEnd):
		c.Close("", "")
	case errors.As(err, &xe):
		c.log().Debug("stream error", "condition", xe.Condition, "text", xe.Text)
		c.Close(xe.Condition, xe.Text)
	case errors.As(err, &ne) && ne.Timeout():
		if !c.closed.Load() {
			c.lost = true
			c.Close("connection-timeout", "idle for too long")
		}
	default:
		// The peer is gone (EOF, reset): finish closes what is left.
		c.lost = !c.errorSent.Load()
		if !c.closed.Load() {
			c.log().Debug("connection ended", "error", err)
		}
	}
}

// finish releases the connection and tells the handler the session ended.
func (c *conn) finish() {
	c.Close("", "")
	c.waitWriters()
	c.wmu.Lock()
	if c.errorSent.Load() {
		linger.Close(c.nc, closeGrace)
	} else {
		c.nc.Close()
	}
	c.wmu.Unlock()
	if s := c.session; s != nil && !c.smFinish() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if c.srv.cfg.Router.Unbind(s) {
			c.srv.cfg.Handler.Closed(ctx, s)
		}
		cancel()
	}
}

// Close implements router.Conn: it sends a stream error (if condition is
// set) and the closing tag, then ends the connection.
func (c *conn) Close(condition, text string) {
	// Closed and queued in one step under the queue's lock: a session
	// goroutine that sees closed and ends waits for the writers
	// (waitWriters, under the same lock) and finds this one started, not
	// a queue still empty and a connection it may close unwritten.
	c.out.mu.Lock()
	if !c.closed.CompareAndSwap(false, true) {
		c.out.mu.Unlock()
		return
	}
	var b []byte
	if !c.headerSent {
		b = append(b, c.header("", "")...)
	}
	if condition != "" {
		c.errorSent.Store(true)
		b = stanza.AppendStreamError(b, condition, text)
	}
	b = append(b, "</stream:stream>"...)
	c.enqueueLocked(b) // releases c.out.mu
	// Give the peer a moment to close its side, then the reader ends.
	c.transport().SetReadDeadline(time.Now().Add(closeGrace))
	c.unpark()
}
