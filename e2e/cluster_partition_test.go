package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// freezeProxy relays TCP connections to target until frozen; then it
// moves no byte either way but keeps every connection open, as a network
// partition does: neither end sees a close, and the NATS server goes on
// writing to a node that reads nothing, until its ping timeout (minutes).
type freezeProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	conns  []net.Conn
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pipe(u, c)
		go p.pipe(c, u)
	}
}

// pipe copies from src to dst, holding what it read while frozen.
func (p *freezeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

func (p *freezeProxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

func (p *freezeProxy) thaw() {
	p.mu.Lock()
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *freezeProxy) close() {
	p.thaw()
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// TestClusterForwardToCutOffNode: node 2 reaches NATS through a proxy that
// then freezes, so node 2 is cut off but its NATS connection stays open
// and the NATS server keeps taking stanzas for it without "no responders".
// Messages node 1 forwards to node 2's user meanwhile, to his full JID and
// to his bare one, are not lost: node 2 never acknowledges them, and when
// its lease runs out node 1 handles them as undelivered, so the user finds
// every one, in order, as an offline message when he logs in on node 1.
func TestClusterForwardToCutOffNode(t *testing.T) {
	t.Parallel()
	natsU := natsURL(t)
	px := newFreezeProxy(t, strings.TrimPrefix(natsU, "nats://"))
	nodes := startClusterNodesVia(t, mixPostgres(t), []string{natsU, "nats://" + px.addr()})
	// Before the nodes stop: node 2's shutdown needs NATS.
	t.Cleanup(px.thaw)
	const pw = "pw-cut"
	alice := alicePCAndBobPhone(t, nodes, pw)

	px.freeze()
	cut := time.Now()
	var want []string
	for i := range 4 {
		to := "bob@localhost/phone"
		if i%2 == 1 {
			to = "bob@localhost"
		}
		body := fmt.Sprintf("during %d", i)
		want = append(want, body)
		alice.send(fmt.Sprintf(`<message to='%s' type='chat' id='c%d'><body>%s</body></message>`, to, i, body))
	}
	// A round trip: node 1 handled alice's messages.
	alice.send(`<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>`)
	alice.expect("ping result", func(e *element) bool { return e.is("", "iq") && e.attr("id") == "ping" })

	// Node 1 reaps node 2 a lease (2 s) and a beat after its last
	// heartbeat; bob, his phone's stream still open on node 2, logs in on
	// node 1.
	time.Sleep(time.Until(cut.Add(3 * time.Second)))
	bob2 := nodes[0].login(t, "bob@localhost/tablet", pw)
	bob2.send(`<presence/>`)
	for i, w := range want {
		m := bob2.expect("offline message "+w, isMessageFrom("alice@localhost/pc"))
		if i == 0 && bodyOf(m) == "before" {
			t.Log("the first message came again: its acknowledgement was late")
			m = bob2.expect("offline message "+w, isMessageFrom("alice@localhost/pc"))
		}
		if bodyOf(m) != w {
			t.Fatalf("offline message %d: %s, want body %q", i, m, w)
		}
	}
}
