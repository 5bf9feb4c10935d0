package component

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/linger"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

const (
	writeTimeout  = 30 * time.Second
	closeGrace    = 2 * time.Second
	maxBatchBytes = 64 << 10
	nsPing        = "urn:xmpp:ping"
)

// errStreamClosing ends the read loop after we closed the stream.
var errStreamClosing = errors.New("stream closing")

// sendResult is what became of a stanza handed to a connection.
type sendResult uint8

const (
	sent sendResult = iota
	gone            // the connection is closing
	full            // the queue is full
)

type conn struct {
	srv      *Server
	nc       net.Conn // a *tls.Conn on a TLS listener
	tls      bool
	ka       Keepalive
	remote   string // address:port, for logs
	remoteIP string
	r        *xmlstream.Reader
	id       string                   // stream id, the salt of the handshake
	ep       atomic.Pointer[Endpoint] // set at the handshake; read by Close and logs from other goroutines
	authed   bool                     // the handshake succeeded; read by the conn's goroutine only

	headerSent atomic.Bool
	wmu        sync.Mutex // serialises writes to nc

	qmu       sync.Mutex
	queue     [][]byte
	writerOn  bool
	held      bool // queue, but start no writer (attach)
	finished  bool // finish is waiting for the writers: start none
	writers   sync.WaitGroup
	closed    atomic.Bool
	closeMu   sync.Mutex // held by Close until its tail is queued
	errorSent atomic.Bool
	fullOnce  atomic.Bool // the queue-full warning was logged

	lastRead  atomic.Int64 // unix nanoseconds
	lastWrite atomic.Int64
	pingMu    sync.Mutex
	pingID    string    // the unanswered keepalive ping, "" if none
	pingSent  time.Time // when it was sent
}

func newConn(s *Server, nc net.Conn, tlsCfg *tls.Config, ka Keepalive) *conn {
	remote := nc.RemoteAddr().String()
	ip := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		ip = h
	}
	c := &conn{srv: s, nc: nc, ka: ka, remote: remote, remoteIP: ip, id: newID()}
	if tlsCfg != nil {
		c.nc, c.tls = tls.Server(nc, tlsCfg), true
	}
	return c
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *conn) log() hclog.Logger {
	if ep := c.ep.Load(); ep != nil {
		return c.srv.cfg.Log.With("remote", c.remote, "domain", ep.domain)
	}
	return c.srv.cfg.Log.With("remote", c.remote)
}

// stampReader records when anything was read, for keepalives.
type stampReader struct{ c *conn }

func (s stampReader) Read(p []byte) (int, error) {
	n, err := s.c.nc.Read(p)
	if n > 0 {
		s.c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *conn) serve() {
	defer c.finish()
	c.nc.SetDeadline(time.Now().Add(c.srv.cfg.AuthTimeout))
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			c.log().Debug("component TLS handshake failed", "error", err)
			c.closed.Store(true)
			return
		}
	}
	c.r = xmlstream.NewReader(stampReader{c}, c.srv.cfg.Limits)
	err := c.authenticate()
	if err == nil {
		c.nc.SetReadDeadline(time.Time{})
		stop := c.startKeepalives()
		err = c.loop()
		stop()
	}
	c.handleReadError(err)
}

// handleReadError turns what ended the read loop into the stream error
// still owed to the peer, if any.
func (c *conn) handleReadError(err error) {
	var xe *xmlstream.Error
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, errStreamClosing):
	case errors.Is(err, xmlstream.ErrStreamEnd):
		c.Close("", "")
	case errors.As(err, &xe):
		c.log().Info("closing component stream", "condition", xe.Condition, "text", xe.Text)
		c.Close(xe.Condition, xe.Text)
	case errors.As(err, &ne) && ne.Timeout():
		if !c.closed.Load() && !c.authed {
			c.log().Info("component did not authenticate in time", "timeout", c.srv.cfg.AuthTimeout)
			c.Close("connection-timeout", "no handshake in "+c.srv.cfg.AuthTimeout.String())
		}
	default:
		if !c.closed.Load() {
			c.log().Debug("component connection ended", "error", err)
		}
	}
}

// finish releases the connection.
func (c *conn) finish() {
	c.Close("", "") // returns once a Close from elsewhere has queued its tail
	// From here no writer starts, so Wait does not race with one starting.
	c.qmu.Lock()
	c.finished = true
	c.qmu.Unlock()
	c.writers.Wait()
	c.wmu.Lock()
	if c.errorSent.Load() {
		linger.Close(c.nc, closeGrace)
	} else {
		c.nc.Close()
	}
	c.wmu.Unlock()
}

// header is our stream header; from is the component's domain, if known.
func (c *conn) header(from string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns:stream='"+xmlstream.NSStream+"' xmlns='"+NSAccept+"' id='"...)
	b = append(b, c.id...)
	b = append(b, '\'')
	if from != "" {
		b = append(b, " from='"...)
		b = xmlstream.AppendAttrValue(b, from)
		b = append(b, '\'')
	}
	return append(b, '>')
}

// authenticate reads the stream header and the handshake, and attaches
// the connection to its domain.
func (c *conn) authenticate() error {
	hdr, err := c.r.ReadHeader()
	if err != nil {
		return err
	}
	to := hdr.Attr("to")
	var ep *Endpoint
	name := ""
	var problem *xmlstream.Error
	switch d, perr := jid.Parse(to); {
	case c.r.ContentNamespace() != NSAccept:
		problem = &xmlstream.Error{Condition: "invalid-namespace", Text: "the content namespace must be " + NSAccept}
	case to == "":
		problem = &xmlstream.Error{Condition: "improper-addressing", Text: "the stream header needs a 'to' naming the component's domain"}
	case perr != nil || !d.IsDomain():
		problem = &xmlstream.Error{Condition: "host-unknown", Text: "'to' must be a domain"}
	default:
		if ep = c.srv.eps[d.Domain()]; ep == nil {
			problem = &xmlstream.Error{Condition: "host-unknown", Text: d.Domain() + " is not a configured component"}
		} else {
			name = ep.domain
		}
	}
	if c.headerSent.CompareAndSwap(false, true) {
		if err := c.writeRaw(c.header(name)); err != nil {
			return err
		}
	}
	if problem != nil {
		c.srv.cfg.Observer.ComponentHandshake(HandshakeFailure)
		c.log().Warn("component connection refused", "to", to, "reason", problem.Condition)
		return problem
	}
	log := c.log().With("domain", name)

	el, err := c.r.Next()
	if err != nil {
		return err
	}
	if el.Space != NSAccept || el.Local != "handshake" || len(el.Elements()) > 0 {
		c.srv.cfg.Observer.ComponentHandshake(HandshakeFailure)
		log.Warn("component sent no handshake", "element", el.Local)
		return &xmlstream.Error{Condition: "not-authorized", Text: "send the <handshake/> first"}
	}
	if g := c.srv.cfg.Guard; g != nil {
		d, ok := g.CheckAddress(c.remoteIP)
		if ok {
			d, ok = g.CheckAccount(c.remoteIP, name)
		}
		if !ok {
			c.srv.cfg.Observer.ComponentHandshake(HandshakeRefused)
			log.Warn("component handshake refused: too many wrong secrets", "retry_after", d)
			return &xmlstream.Error{Condition: "policy-violation", Text: "too many failed handshakes; retry in " + d.Round(time.Second).String()}
		}
	}
	if !verifyHandshake(c.id, ep.currentSecret(), el.Text()) {
		if g := c.srv.cfg.Guard; g != nil {
			g.Failed(c.remoteIP, name)
		}
		c.srv.cfg.Observer.ComponentHandshake(HandshakeFailure)
		log.Warn("component handshake failed: wrong secret")
		return &xmlstream.Error{Condition: "not-authorized", Text: "the handshake does not match the secret"}
	}
	if g := c.srv.cfg.Guard; g != nil {
		g.Succeeded(c.remoteIP, name)
	}
	c.ep.Store(ep)
	ok, old := ep.attach(c, []byte("<handshake/>"))
	if !ok {
		c.srv.cfg.Observer.ComponentHandshake(HandshakeRefused)
		log.Warn("component refused: the domain is already connected")
		return &xmlstream.Error{Condition: "conflict", Text: name + " is already connected"}
	}
	c.authed = true
	if old != nil {
		old.log().Info("component replaced by a new connection", "by", c.remote)
		old.Close("conflict", "replaced by a new connection")
	} else {
		c.srv.cfg.Observer.ComponentConnected(name, true)
	}
	c.srv.cfg.Observer.ComponentHandshake(HandshakeSuccess)
	log.Info("component connected", "tls", c.tls)
	return nil
}

// loop reads the component's stanzas and routes them.
func (c *conn) loop() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	domain := c.ep.Load().domain
	for {
		el, err := c.r.Next()
		if err != nil {
			return err
		}
		if c.closed.Load() {
			return errStreamClosing
		}
		if el.Space == xmlstream.NSStream && el.Local == "error" {
			c.log().Warn("component sent a stream error", "error", streamErrorText(el))
			c.Close("", "")
			return errStreamClosing
		}
		toClient(el)
		if !stanza.IsStanza(el) {
			return &xmlstream.Error{Condition: "unsupported-stanza-type", Text: "<" + el.Local + "/> is not a stanza"}
		}
		from, err := jid.Parse(el.Attr("from"))
		if err != nil || from.Domain() != domain {
			c.log().Warn("component sent a stanza from a foreign address", "from", el.Attr("from"))
			return &xmlstream.Error{Condition: "invalid-from", Text: "'from' must be an address at " + domain + ", got " + strconv.Quote(el.Attr("from"))}
		}
		typ := el.Attr("type")
		answerable := typ != "error" && !(el.Local == "iq" && typ == "result")
		if el.Attr("to") == "" {
			if answerable {
				c.reply(stanza.ErrorReply(el, stanza.ErrBadRequest.WithText("a component's stanza needs a 'to'")))
			}
			continue
		}
		if el.Local == "iq" {
			if c.pong(el) {
				continue
			}
			if el.Attr("id") == "" || !validIQType(el, typ) {
				if answerable {
					c.reply(stanza.ErrorReply(el, stanza.ErrBadRequest.WithText("an IQ needs an id, a type and (for get and set) exactly one payload")))
				}
				continue
			}
		}
		c.srv.cfg.Observer.ComponentStanza(domain, true, el.Local)
		c.srv.cfg.Router.Route(ctx, el)
	}
}

func validIQType(iq *xmlstream.Element, typ string) bool {
	switch typ {
	case "get", "set":
		return len(iq.Elements()) == 1
	case "result", "error":
		return true
	}
	return false
}

// toClient moves el and its descendants from the component stream's
// namespace to jabber:client, the namespace the rest of koi routes in.
func toClient(el *xmlstream.Element) {
	if el.Space == NSAccept {
		el.Space = xmlstream.NSClient
	}
	for _, n := range el.Children {
		if n.Elem != nil {
			toClient(n.Elem)
		}
	}
}

func streamErrorText(el *xmlstream.Element) string {
	var cond, text string
	for _, x := range el.Elements() {
		if x.Space == stanza.NSStreams && x.Local == "text" {
			text = x.Text()
		} else if cond == "" {
			cond = x.Local
		}
	}
	if text != "" {
		return cond + ": " + text
	}
	return cond
}

// reply sends a stanza koi itself addresses to the component.
func (c *conn) reply(el *xmlstream.Element) {
	if c.send(el.AppendXML(nil, xmlstream.NSClient)) == full {
		c.warnFull()
	}
}

// send queues a serialised stanza.
func (c *conn) send(b []byte) sendResult {
	if c.closed.Load() {
		return gone
	}
	if !c.enqueue(b, false) {
		c.warnFull()
		return full
	}
	return sent
}

func (c *conn) warnFull() {
	if c.fullOnce.CompareAndSwap(false, true) {
		c.log().Warn("component send queue full: stanzas for it bounce until it catches up", "queue", c.srv.cfg.SendQueue)
	}
}

// enqueue adds b to the outgoing queue and makes sure a writer runs. It
// refuses when the queue is full, unless force (the closing tail).
func (c *conn) enqueue(b []byte, force bool) bool {
	c.qmu.Lock()
	if !force && len(c.queue) >= c.srv.cfg.SendQueue {
		c.qmu.Unlock()
		return false
	}
	if c.finished {
		c.qmu.Unlock()
		return false
	}
	c.queue = append(c.queue, b)
	start := !c.writerOn && !c.held
	if start {
		c.writerOn = true
		c.writers.Add(1)
	}
	c.qmu.Unlock()
	if start {
		go c.writer()
	}
	return true
}

// hold keeps what is queued from being written until release.
func (c *conn) hold() {
	c.qmu.Lock()
	c.held = true
	c.qmu.Unlock()
}

// release writes what was queued while held.
func (c *conn) release() {
	c.qmu.Lock()
	c.held = false
	start := !c.writerOn && len(c.queue) > 0 && !c.finished
	if start {
		c.writerOn = true
		c.writers.Add(1)
	}
	c.qmu.Unlock()
	if start {
		go c.writer()
	}
}

// writer writes the queue out in batches and exits once it is empty.
func (c *conn) writer() {
	defer c.writers.Done()
	var buf []byte
	for {
		c.qmu.Lock()
		q := c.queue
		c.queue = nil
		if len(q) == 0 {
			c.writerOn = false
			c.fullOnce.Store(false)
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		for len(q) > 0 {
			buf = buf[:0]
			for len(q) > 0 && (len(buf) == 0 || len(buf)+len(q[0]) <= maxBatchBytes) {
				buf = append(buf, q[0]...)
				q = q[1:]
			}
			if err := c.writeRaw(buf); err != nil {
				// The peer is gone: drop the rest; the reader ends.
				c.closed.Store(true)
				c.nc.Close()
			}
		}
	}
}

func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(b)
	c.lastWrite.Store(time.Now().UnixNano())
	return err
}

// Close sends a stream error (if condition is set) and the closing tag,
// then ends the connection.
func (c *conn) Close(condition, text string) {
	// Held until the tail is queued: finish's own Close waits here, so
	// that it does not stop the writers before this one's tail is in.
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	// The domain goes down at once, not when the connection is finally
	// gone: a component told of an error may reconnect before that.
	if ep := c.ep.Load(); ep != nil && ep.detach(c) {
		c.srv.cfg.Observer.ComponentConnected(ep.domain, false)
		c.log().Info("component disconnected", "condition", condition)
	}
	var b []byte
	if c.headerSent.CompareAndSwap(false, true) {
		b = c.header("")
	}
	if condition != "" {
		c.errorSent.Store(true)
		b = stanza.AppendStreamError(b, condition, text)
	}
	b = append(b, "</stream:stream>"...)
	c.enqueue(b, true)
	// Give the peer a moment to close its side, then the reader ends.
	c.nc.SetReadDeadline(time.Now().Add(closeGrace))
}

// startKeepalives runs the keepalive of an authenticated connection until
// the returned function is called.
func (c *conn) startKeepalives() func() {
	ka := c.ka
	if ka.Mode == KeepaliveOff || ka.Interval <= 0 {
		return func() {}
	}
	tick := ka.Interval / 4
	if ka.Mode == KeepalivePing && ka.Timeout > 0 {
		tick = min(tick, ka.Timeout/4)
	}
	tick = max(tick, 10*time.Millisecond)
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	c.lastWrite.Store(now)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				c.keepalive(now)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// keepalive sends a keepalive when the link has been silent both ways
// for the interval, and in ping mode closes a link whose ping went
// unanswered: anything read since counts as an answer.
func (c *conn) keepalive(now time.Time) {
	if c.closed.Load() {
		return
	}
	ka := c.ka
	c.pingMu.Lock()
	if c.pingID != "" {
		switch {
		case c.lastRead.Load() > c.pingSent.UnixNano():
			c.pingID = ""
		case now.Sub(c.pingSent) >= ka.Timeout:
			c.pingMu.Unlock()
			c.log().Warn("closing a component that did not answer a ping", "timeout", ka.Timeout)
			c.Close("connection-timeout", "no answer to a ping in "+ka.Timeout.String())
			return
		default:
			c.pingMu.Unlock()
			return
		}
	}
	c.pingMu.Unlock()
	n := now.UnixNano()
	if n-c.lastWrite.Load() < int64(ka.Interval) || n-c.lastRead.Load() < int64(ka.Interval) {
		return
	}
	if ka.Mode == KeepaliveWhitespace {
		c.enqueue([]byte{' '}, true)
		return
	}
	id := "koi-ping-" + strconv.FormatInt(n, 36)
	c.pingMu.Lock()
	c.pingID, c.pingSent = id, now
	c.pingMu.Unlock()
	iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "get").SetAttr("id", id).
		SetAttr("from", c.ep.Load().pingFrom).SetAttr("to", c.ep.Load().domain).
		AppendChild(xmlstream.NewElement(nsPing, "ping"))
	c.enqueue(iq.AppendXML(nil, xmlstream.NSClient), true)
}

// pong reports whether iq answers our keepalive ping; it is not routed.
// An error answer (a component without XEP-0199) counts too: it came back.
func (c *conn) pong(iq *xmlstream.Element) bool {
	typ := iq.Attr("type")
	if typ != "result" && typ != "error" {
		return false
	}
	id := iq.Attr("id")
	if !strings.HasPrefix(id, "koi-ping-") || iq.Attr("to") != c.ep.Load().pingFrom {
		return false
	}
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	if id == c.pingID {
		c.pingID = ""
	}
	// A late answer to an earlier ping is ours too: nobody else asked.
	return true
}
