package c2s

import (
	"sync"

	"github.com/koi-im/koi/core/csi"
	"github.com/koi-im/koi/core/xmlstream"
)

const nsCSI = csi.NS

// csiGate is an inactive session's filter (XEP-0352). It exists only from
// <inactive/> to <active/>: a session that never goes inactive pays one nil
// pointer. Stanzas come from other sessions' goroutines, so the filter is
// used under mu, and what it releases is queued under mu too: the order
// it decided on is the order on the wire.
type csiGate struct {
	mu   sync.Mutex
	f    *csi.Filter
	done bool // <active/> flushed the filter: send straight on
}

// Send implements router.Conn. While the client is inactive, stanzas go
// through its filter first.
func (c *conn) Send(el *xmlstream.Element) bool {
	g := c.csi.Load()
	if g == nil || c.closed.Load() {
		return c.send(el)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return c.send(el)
	}
	return c.sendAll(g.f.Push(el))
}

func (c *conn) sendAll(els []*xmlstream.Element) bool {
	for _, el := range els {
		if !c.send(el) {
			return false
		}
	}
	return true
}

// clientState handles <inactive/> and <active/> from the client and
// reports whether el was one of them.
func (c *conn) clientState(el *xmlstream.Element) bool {
	if el.Space != csi.NS {
		return false
	}
	switch el.Local {
	case "inactive":
		if c.csi.Load() == nil {
			c.csi.Store(&csiGate{f: csi.New(csi.DefaultMaxHeld)})
		}
	case "active":
		// Flush, then drop the gate, both under its lock: a Send that
		// still finds the gate waits, sees done and goes straight on; one
		// that finds none came after the flush. Either way it queues after
		// what was held, as a sender's stanzas must stay in order.
		if g := c.csi.Load(); g != nil {
			g.mu.Lock()
			c.sendAll(g.f.Activate())
			g.done = true
			c.csi.Store(nil)
			g.mu.Unlock()
		}
	default:
		return false
	}
	return true
}
