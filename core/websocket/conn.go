package websocket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/koi-im/koi/core/xmlstream"
)

const (
	// pingTimeout bounds the wait for the pong to a keepalive ping.
	pingTimeout = 30 * time.Second
	// closeTimeout bounds the wait for the client's half of the close
	// handshake; the library would wait 5 s, which a client that stopped
	// reading could make every shutdown wait.
	closeTimeout = time.Second
)

// saslSuccess starts the element after which the client restarts the
// stream (RFC 6120 §6.4.6), as koi writes it.
var saslSuccess = []byte("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'")

// conn presents one WebSocket to c2s as the byte stream of an RFC 6120
// stream, translating the framing at the boundary, so that the one
// session implementation serves WebSocket clients too.
//
// Reading goes through a pipe that a goroutine fills from the WebSocket:
// c2s relies on read deadlines that it can move while a read is blocked
// (idle timeout, the grace period after a stream error) and that leave
// the connection usable when they fire; a pipe has exactly those, while
// cancelling a WebSocket read closes the connection. Writing is
// synchronous: each Write becomes WebSocket messages before it returns.
type conn struct {
	ws      *websocket.Conn
	in      net.Conn // c2s reads here
	feed    net.Conn // the other end of the pipe
	feedMu  sync.Mutex
	maxSize int64
	remote  net.Addr
	local   net.Addr

	// fail is why the feed stopped on a bad message; c2s gets it as its
	// read error and ends the stream with it.
	fail atomic.Pointer[xmlstream.Error]
	// openAllowed is true where a stream may (re)start: at first, and
	// after SASL success. Anywhere else the c2s reader would take the
	// header for an element that never ends and wait for its end tag.
	openAllowed atomic.Bool

	wmu           sync.Mutex // c2s serialises its writes; this guards out against Close
	out           outbound
	writeDeadline atomic.Int64 // unix nanoseconds, 0 for none
	pinging       atomic.Bool

	ctx       context.Context // ends when the connection is closed
	cancel    context.CancelFunc
	closeOnce sync.Once
	done      chan struct{} // closed when the feed goroutine has returned
}

// newConn wraps ws, whose messages may be at most maxSize bytes, and
// starts feeding its messages to the pipe.
func newConn(ws *websocket.Conn, maxSize int64, remote, local net.Addr) *conn {
	in, feed := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		ws: ws, in: in, feed: feed, maxSize: maxSize, remote: remote, local: local,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	// One byte more than the limit, so that reading limit+1 bytes tells
	// an oversized message without the library closing the connection.
	ws.SetReadLimit(maxSize + 1)
	c.openAllowed.Store(true)
	go c.feedLoop()
	return c
}

// feedLoop reads messages, checks and translates them and writes them to
// the pipe. It ends when the WebSocket or the pipe is closed, or on a bad
// message, after storing the stream error that c2s is to send.
func (c *conn) feedLoop() {
	defer close(c.done)
	defer c.feed.Close()
	for {
		typ, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			return // closed by the peer or by us: c2s reads EOF
		}
		if typ != websocket.MessageText {
			c.fail.Store(&xmlstream.Error{Condition: "bad-format", Text: "binary WebSocket messages are not allowed; send text (RFC 7395 §3.2)"})
			return
		}
		msg, err := io.ReadAll(io.LimitReader(r, c.maxSize+1))
		if err != nil {
			return
		}
		if int64(len(msg)) > c.maxSize {
			c.fail.Store(&xmlstream.Error{Condition: "policy-violation", Text: "message larger than " + strconv.FormatInt(c.maxSize, 10) + " bytes"})
			return
		}
		b, xerr := translateIn(msg)
		if xerr != nil {
			c.fail.Store(xerr)
			return
		}
		if len(b) == 0 {
			continue
		}
		if bytes.HasPrefix(b, []byte(streamHeader)) && !c.openAllowed.Swap(false) {
			c.fail.Store(&xmlstream.Error{Condition: "bad-format", Text: "<open/> only starts a stream or restarts it after SASL success (RFC 7395 §3.4)"})
			return
		}
		c.feedMu.Lock()
		_, err = c.feed.Write(b)
		c.feedMu.Unlock()
		if err != nil {
			return // c2s closed its end
		}
	}
}

// Read implements net.Conn for c2s. After a bad message it returns the
// stream error as the read error, which c2s sends before closing.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	if errors.Is(err, io.EOF) {
		if f := c.fail.Load(); f != nil {
			return n, f
		}
	}
	return n, err
}

// Write implements net.Conn for c2s: every top-level element becomes one
// text message. A whitespace keepalive becomes a WebSocket ping (RFC 7395
// §3.6 forbids whitespace between elements).
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	msgs, keepalive, err := c.out.translate(p)
	if err != nil {
		return 0, err
	}
	ctx := c.ctx
	if d := c.writeDeadline.Load(); d != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, d))
		defer cancel()
	}
	for _, m := range msgs {
		if bytes.HasPrefix(m, saslSuccess) {
			c.openAllowed.Store(true) // before the client can see it
		}
		if err := c.ws.Write(ctx, websocket.MessageText, m); err != nil {
			return 0, err
		}
	}
	if keepalive {
		c.ping()
	}
	return len(p), nil
}

// ping sends a WebSocket ping unless one is under way. Its pong is fed to
// c2s as a single space, the keepalive c2s knows from TCP clients, so a
// client that answers pings is not idle.
func (c *conn) ping() {
	if !c.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.pinging.Store(false)
		ctx, cancel := context.WithTimeout(c.ctx, pingTimeout)
		defer cancel()
		if c.ws.Ping(ctx) != nil {
			return
		}
		c.feedMu.Lock()
		c.feed.Write([]byte{' '}) //nolint:errcheck // a closed pipe means the stream ended anyway
		c.feedMu.Unlock()
	}()
}

// Close ends the WebSocket with a close handshake. c2s calls it when the
// stream is over, after its last write (<close/>).
func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.in.Close()
		// Cancelling the context ends the feed's pending read, which
		// closes the connection and so ends the handshake's wait.
		t := time.AfterFunc(closeTimeout, c.cancel)
		err = c.ws.Close(websocket.StatusNormalClosure, "")
		t.Stop()
		c.cancel()
	})
	return err
}

// abort closes the WebSocket without a handshake, for a forced shutdown.
func (c *conn) abort() {
	c.cancel()
	c.ws.CloseNow()
	c.in.Close()
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error { return c.in.SetReadDeadline(t) }

func (c *conn) SetWriteDeadline(t time.Time) error {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	c.writeDeadline.Store(d)
	return nil
}

// addr is a net.Addr from the address:port string an HTTP request has.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }
