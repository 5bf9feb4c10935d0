package c2s

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/core/csi"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/xmlstream"
)

// wire is the client end of a pipe: it collects what the server writes.
type wire struct {
	mu  sync.Mutex
	buf strings.Builder
}

func newCSIConn(t *testing.T) (*conn, *wire) {
	t.Helper()
	// A queue deep enough that the concurrent test's burst never finds it
	// full: that would close the connection, which is not what is tested.
	srv := New(Config{Host: func(string) Host { return fakeHost{} }, Router: router.New(), SendQueue: 1 << 16})
	a, b := net.Pipe()
	c := newConn(srv, a, TLSDisabled)
	w := &wire{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			w.mu.Lock()
			w.buf.Write(buf[:n])
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { a.Close(); b.Close(); c.waitWriters() })
	return c, w
}

var idAttr = regexp.MustCompile(`<(?:message|presence|iq) [^>]*?id=['"]([^'"]+)['"]`)

// ids waits until the stanza with id last was written and returns the ids
// of the stanzas written since the previous call, in order.
func (w *wire) ids(t *testing.T, last string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		if !strings.Contains(w.buf.String(), "id='"+last+"'") && time.Now().Before(deadline) {
			// Not yet: parse only once it is there.
			w.mu.Unlock()
			time.Sleep(time.Millisecond)
			continue
		}
		var got []string
		for _, m := range idAttr.FindAllStringSubmatch(w.buf.String(), -1) {
			got = append(got, m[1])
		}
		if len(got) > 0 && got[len(got)-1] == last {
			w.buf.Reset()
			w.mu.Unlock()
			return strings.Join(got, " ")
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%q not written; have %q", last, got)
		}
		time.Sleep(time.Millisecond)
	}
}

func presence(id, from string) *xmlstream.Element {
	return xmlstream.NewElement(xmlstream.NSClient, "presence").SetAttr("id", id).SetAttr("from", from)
}

func chatState(id, from string) *xmlstream.Element {
	return xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("id", id).SetAttr("from", from).
		AppendChild(xmlstream.NewElement("http://jabber.org/protocol/chatstates", "composing"))
}

func body(id, from string) *xmlstream.Element {
	return xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("id", id).SetAttr("from", from).
		AppendChild(xmlstream.NewElement(xmlstream.NSClient, "body").AppendText("hi"))
}

func csiElement(local string) *xmlstream.Element { return xmlstream.NewElement(csi.NS, local) }

func TestCSIGate(t *testing.T) {
	c, w := newCSIConn(t)
	if c.clientState(presence("x", "a@x/1")) {
		t.Fatal("a presence taken for a client state")
	}
	if !c.clientState(csiElement("inactive")) || c.csi.Load() == nil {
		t.Fatal("<inactive/> not taken")
	}
	for _, el := range []*xmlstream.Element{presence("p1", "a@x/1"), chatState("c1", "a@x/1"), presence("p2", "a@x/1"), body("m1", "a@x/1")} {
		if !c.Send(el) {
			t.Fatalf("Send(%s) refused", el.Attr("id"))
		}
	}
	if got := w.ids(t, "m1"); got != "c1 p2 m1" {
		t.Errorf("inactive: wrote %q, want c1 p2 m1", got)
	}
	c.Send(presence("p3", "a@x/1"))
	if !c.clientState(csiElement("active")) || c.csi.Load() != nil {
		t.Fatal("<active/> not taken, or the filter kept")
	}
	c.Send(presence("p4", "a@x/2"))
	if got := w.ids(t, "p4"); got != "p3 p4" {
		t.Errorf("active: wrote %q, want p3 p4", got)
	}
}

// Stanzas from other goroutines while the client flips between inactive
// and active: every message arrives, and each sender's stanzas arrive in
// the order sent (presence may be collapsed away, never reordered).
func TestCSIGateConcurrent(t *testing.T) {
	c, w := newCSIConn(t)
	const senders, each = 4, 200
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := fmt.Sprintf("s%d@x/r", s)
			for i := range each {
				c.Send(presence(fmt.Sprintf("p%d-%d", s, 2*i), from))
				c.Send(body(fmt.Sprintf("m%d-%d", s, 2*i+1), from))
			}
		}()
	}
	for i := 0; i < 100; i++ {
		c.clientState(csiElement("inactive"))
		time.Sleep(50 * time.Microsecond)
		c.clientState(csiElement("active"))
	}
	wg.Wait()
	c.Send(body("end", "z@x/r"))
	last := make([]int, senders)
	messages := make([]int, senders)
	for s := range last {
		last[s] = -1
	}
	for _, id := range strings.Fields(w.ids(t, "end")) {
		var kind byte
		var s, seq int
		if _, err := fmt.Sscanf(id, "%c%d-%d", &kind, &s, &seq); err != nil {
			continue
		}
		if seq <= last[s] {
			t.Fatalf("sender %d: %s arrived after its stanza %d", s, id, last[s])
		}
		last[s] = seq
		if kind == 'm' {
			messages[s]++
		}
	}
	for s, n := range messages {
		if n != each {
			t.Errorf("sender %d: %d messages arrived, want %d", s, n, each)
		}
	}
}
