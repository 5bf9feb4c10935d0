package load

import (
	"math"
	"testing"
	"time"
)

func TestMessageIDRoundTrip(t *testing.T) {
	m := &msgRun{needle: []byte("kb0badcafe.")}
	p := &pair{
		prefix: []byte("<message to='kb1@localhost' type='chat' id='kb0badcafe."),
		suffix: []byte("'><body>hi</body></message>"),
	}
	for _, c := range []struct {
		seq uint64
		ts  int64
	}{{0, 0}, {1, 12345}, {math.MaxUint64, math.MaxInt64}} {
		raw := p.appendMsg(nil, c.seq, c.ts)
		// The server re-serialises: attributes move, quotes may change.
		routed := []byte("<message xmlns=\"jabber:client\" from=\"kb0@localhost/kb\" type=\"chat\" id=\"" + string(raw[len("<message to='kb1@localhost' type='chat' id='"):len(raw)-len(p.suffix)]) + "\"><body>hi</body></message>")
		seq, ts, ok := m.parseID(routed)
		if !ok || seq != c.seq || ts != c.ts {
			t.Errorf("parseID(%s) = %d, %d, %v; want %d, %d", routed, seq, ts, ok, c.seq, c.ts)
		}
	}
	for _, foreign := range []string{
		"<message id='kb0000beef.0000000000000001.0000000000000001'/>", // another run
		"<message id='kb0badcafe.00000000zz000001.0000000000000001'/>", // not hex
		"<message id='kb0badcafe.0000000000000001'/>",                  // truncated
		"<message/>",
	} {
		if _, _, ok := m.parseID([]byte(foreign)); ok {
			t.Errorf("parseID accepted %s", foreign)
		}
	}
}

func TestPairBookkeeping(t *testing.T) {
	p := &pair{highest: -1}
	ws, we := int64(100), int64(200)
	// seq 0,1,3,2,3,5 arriving at times inside and outside the window.
	for _, a := range []struct {
		seq    uint64
		ts, rt int64
	}{{0, 0, 50}, {1, 90, 120}, {3, 100, 130}, {2, 100, 140}, {3, 100, 150}, {5, 150, 250}, {1000, 160, 190}} {
		p.got(a.seq, a.ts, a.rt, ws, we)
	}
	if got := p.recv.Load(); got != 6 {
		t.Errorf("distinct received %d, want 6", got)
	}
	if got := p.dup.Load(); got != 1 {
		t.Errorf("duplicates %d, want 1", got)
	}
	if got := p.ooo.Load(); got != 1 {
		t.Errorf("out of order %d, want 1 (seq 2 after 3)", got)
	}
	if p.inWin != 4 || p.hist.Count() != 4 {
		t.Errorf("in window %d (hist %d), want 4", p.inWin, p.hist.Count())
	}
	if p.hist.Max() != 40*time.Nanosecond {
		t.Errorf("max latency %v, want 40ns", p.hist.Max())
	}
}

func TestBody(t *testing.T) {
	for _, n := range []int{0, 1, 45, 64, 1000} {
		if got := len(body(n)); got != n {
			t.Errorf("len(body(%d)) = %d", n, got)
		}
	}
}

// TestPairNodes checks the placement of pairs on a cluster: senders spread
// over the nodes, and exactly the asked share of pairs crossing nodes,
// each to a node other than the sender's.
func TestPairNodes(t *testing.T) {
	for _, c := range []struct {
		nodes, pairs, wantCross int
		cross                   float64
	}{
		{1, 100, 0, 0},
		{2, 100, 50, 0.5},
		{3, 300, 198, 2.0 / 3},
		{3, 99, 0, 0},
		{3, 99, 99, 1},
		{2, 1000, 250, 0.25},
	} {
		crossed := 0
		senders := make([]int, c.nodes)
		receivers := make([]int, c.nodes)
		for i := range c.pairs {
			from, to := pairNodes(i, c.nodes, c.cross)
			if from < 0 || from >= c.nodes || to < 0 || to >= c.nodes {
				t.Fatalf("%d nodes: pair %d placed on %d → %d", c.nodes, i, from, to)
			}
			senders[from]++
			receivers[to]++
			if from != to {
				crossed++
			}
		}
		if crossed != c.wantCross {
			t.Errorf("%d nodes, %d pairs, cross %.2f: %d pairs cross, want %d", c.nodes, c.pairs, c.cross, crossed, c.wantCross)
		}
		for n := range c.nodes {
			if senders[n] != c.pairs/c.nodes || receivers[n] != c.pairs/c.nodes {
				t.Errorf("%d nodes, cross %.2f: node %d has %d senders and %d receivers, want %d each", c.nodes, c.cross, n, senders[n], receivers[n], c.pairs/c.nodes)
			}
		}
	}
}
