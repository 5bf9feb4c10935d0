package c2s

import (
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/core/xmlstream"
)

// Tunables are the limits of a Config that a running server can change
// (a configuration reload) without touching a session: a new connection
// reads its stanzas under the Limits and IdleTimeout current when it opens
// its stream, and every session's send queue is bounded by the current
// SendQueue.
type Tunables struct {
	Limits      xmlstream.Limits
	IdleTimeout time.Duration
	SendQueue   int // <= 0: 1024
}

// SetTunables replaces the tunables; see Tunables for who sees them when.
func (s *Server) SetTunables(t Tunables) {
	if t.SendQueue <= 0 {
		t.SendQueue = 1024
	}
	s.tunables.Store(&t)
}

// tun returns the current tunables.
func (s *Server) tun() *Tunables { return s.tunables.Load() }

// KeepalivePolicy holds a listener's keepalive policy where a reload can
// change it (Server.SetKeepalive): every session of the listener, those
// up already included, follows the current policy from the next sweep.
type KeepalivePolicy struct{ p atomic.Pointer[Keepalive] }

// NewKeepalivePolicy returns a holder of ka.
func NewKeepalivePolicy(ka Keepalive) *KeepalivePolicy {
	p := &KeepalivePolicy{}
	p.p.Store(&ka)
	return p
}

// Load returns the current policy; a nil holder has keepalives off.
func (p *KeepalivePolicy) Load() Keepalive {
	if p == nil {
		return Keepalive{Mode: KeepaliveOff}
	}
	return *p.p.Load()
}

// SetKeepalive makes p's sessions follow ka.
func (s *Server) SetKeepalive(p *KeepalivePolicy, ka Keepalive) {
	p.p.Store(&ka)
	s.startKeepalives(ka)
}
