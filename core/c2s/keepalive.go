package c2s

// Keepalives: whitespace (RFC 6120 §4.6.1) or XEP-0199 pings from the
// server, sent only to links that have been silent. One sweep for all
// connections costs less than a timer per connection and keeps an idle
// session's memory flat.

import (
	"strconv"
	"time"

	"github.com/koi-im/koi/core/xmlstream"
)

// KeepaliveMode is what a listener sends on a silent link.
type KeepaliveMode uint8

const (
	// KeepaliveWhitespace sends a single space: cheap, keeps NATs and
	// proxies from dropping the link, and a dead peer shows up when the
	// write fails.
	KeepaliveWhitespace KeepaliveMode = iota
	// KeepalivePing sends an XEP-0199 ping IQ and closes the stream with
	// <connection-timeout/> when nothing at all comes back in time: it
	// finds dead clients that whitespace cannot (a half-open TCP link can
	// take the kernel's retransmission timeout, many minutes, to fail).
	KeepalivePing
	// KeepaliveOff sends nothing.
	KeepaliveOff
)

const nsPing = "urn:xmpp:ping"

// Keepalive is a listener's keepalive policy.
type Keepalive struct {
	Mode KeepaliveMode
	// Interval is how long a link must be silent, nothing read from the
	// client and nothing written to it, before a keepalive is sent; 0
	// turns keepalives off.
	Interval time.Duration
	// Timeout (ping mode) is how long the client has to send anything
	// (the pong or any other traffic) after a ping.
	Timeout time.Duration
}

func (k Keepalive) on() bool { return k.Mode != KeepaliveOff && k.Interval > 0 }

// startKeepalives makes sure the sweep runs often enough for ka.
func (s *Server) startKeepalives(ka Keepalive) {
	if !ka.on() {
		return
	}
	tick := ka.Interval / 4
	if ka.Mode == KeepalivePing && ka.Timeout > 0 {
		tick = min(tick, ka.Timeout/4)
	}
	tick = max(tick, 10*time.Millisecond)
	for {
		cur := s.keepaliveTick.Load()
		if cur != 0 && cur <= int64(tick) {
			break
		}
		if s.keepaliveTick.CompareAndSwap(cur, int64(tick)) {
			// Wake a sweep that is waiting out a longer period.
			select {
			case s.keepaliveKick <- struct{}{}:
			default:
			}
			break
		}
	}
	s.keepaliveOnce.Do(func() { go s.keepalives() })
}

// keepalives is the sweep over all connections.
func (s *Server) keepalives() {
	for {
		t := time.NewTimer(time.Duration(s.keepaliveTick.Load()))
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-s.keepaliveKick:
			t.Stop()
		case now := <-t.C:
			s.mu.Lock()
			conns := make([]*conn, 0, len(s.conns))
			for c := range s.conns {
				conns = append(conns, c)
			}
			s.mu.Unlock()
			for _, c := range conns {
				c.keepalive(now)
			}
		}
	}
}

// keepalive sends a keepalive if the link has been silent for the
// interval, and in ping mode closes a link whose ping went unanswered.
// Only bound sessions get them: before that a space could land in the
// middle of a TLS handshake, and a ping has no address to go to.
func (c *conn) keepalive(now time.Time) {
	ka := c.ka.Load()
	if !ka.on() || !c.bound.Load() || c.closed.Load() {
		return
	}
	n := now.UnixNano()
	if sent := c.pingSent.Load(); sent != 0 {
		switch {
		case c.lastRead.Load() > sent:
			// Anything read since the ping, the pong or a stanza, shows
			// the client is there.
			c.pingSent.Store(0)
		case n-sent >= int64(ka.Timeout):
			c.srv.cfg.Log.Info("closing a client that did not answer a ping", "remote", c.remote, "timeout", ka.Timeout)
			c.Close("connection-timeout", "no answer to a ping in "+retryText(ka.Timeout))
			return
		default:
			return
		}
	}
	if n-c.lastWrite.Load() < int64(ka.Interval) || n-c.lastRead.Load() < int64(ka.Interval) {
		return
	}
	if c.writing() {
		return
	}
	if ka.Mode == KeepaliveWhitespace {
		c.enqueue([]byte{' '}, true)
		return
	}
	c.pingSent.Store(n)
	iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "get").
		SetAttr("id", "koi-ping-"+strconv.FormatInt(n, 36)).
		SetAttr("from", c.session.JID().Domain()).SetAttr("to", c.session.JID().String()).
		AppendChild(xmlstream.NewElement(nsPing, "ping"))
	c.enqueue(iq.AppendXML(nil, xmlstream.NSClient), true)
}
