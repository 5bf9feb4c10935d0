package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sm"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/internal/testsvc"
)

// These tests run nodes in one process against the NATS (with JetStream)
// of the machine, KOI_TEST_NATS_URL or nats://127.0.0.1:4222, each test
// with a cluster name of its own.

func natsURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("KOI_TEST_NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "nats://"), 2*time.Second)
	if err != nil {
		// Asked for (KOI_TEST_NATS_URL), a missing NATS fails, as on CI.
		err = fmt.Errorf("NATS at %s not reachable (nats-server -js; set KOI_TEST_NATS_URL): %w", u, err)
		if os.Getenv("KOI_TEST_NATS_URL") != "" {
			t.Fatal(err)
		}
		testsvc.Require(t, fmt.Errorf("%w: %w", testsvc.ErrMissing, err))
	}
	c.Close()
	return u
}

// modsLog records what the cluster asks of the IM logic.
type modsLog struct {
	mu          sync.Mutex
	undelivered []string
	// gate, if set, holds Undelivered back until it is closed: a backend
	// that stores slowly.
	gate chan struct{}
	// then, if set, runs after Undelivered recorded a stanza: the IM
	// logic routing it on.
	then func(el *xmlstream.Element)
}

func (m *modsLog) Redeliver(context.Context, *xmlstream.Element) {}
func (m *modsLog) Closed(context.Context, *router.Session)       {}
func (m *modsLog) Undelivered(_ context.Context, s *router.Session, el *xmlstream.Element) {
	m.mu.Lock()
	gate := m.gate
	m.mu.Unlock()
	if gate != nil {
		<-gate
	}
	m.mu.Lock()
	m.undelivered = append(m.undelivered, s.JID().String()+" "+el.String())
	then := m.then
	m.mu.Unlock()
	if then != nil {
		then(el)
	}
}

type node struct {
	*Cluster
	rt  *router.Router
	mod *modsLog
}

func startNode(t testing.TB, url, name, nodeName string) *node {
	t.Helper()
	rt := router.New()
	mod := &modsLog{}
	c := New(Config{URL: url, Node: nodeName, Lease: 2 * time.Second, Name: name}, hclog.NewNullLogger(), rt, mod)
	return &node{c, rt, mod}
}

// startedPair starts nodes a and b of a cluster of their own, stopped
// when the test ends, and waits until a sees b.
func startedPair(t *testing.T) (a, b *node) {
	t.Helper()
	url, name := natsURL(t), clusterName()
	a, b = startNode(t, url, name, "a"), startNode(t, url, name, "b")
	for _, n := range []*node{a, b} {
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Stop(context.Background()) })
	}
	waitLive(t, a, 1)
	return a, b
}

func clusterName() string {
	var b [4]byte
	rand.Read(b[:])
	return "u" + hex.EncodeToString(b[:])
}

func waitLive(t *testing.T, n *node, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.liveNodes() != want {
		if time.Now().After(deadline) {
			t.Fatalf("node %s sees %d live nodes, want %d", n.Node(), n.liveNodes(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// handovers hands over one session, as core/c2s does.
type handovers struct {
	id string
	ho *sm.Handover
}

func (h handovers) HandOver(id string, owner jid.JID, _ uint32, send func(*sm.Handover) error) error {
	if id != h.id || !strings.HasPrefix(h.ho.JID, owner.String()+"/") {
		return sm.ErrUnknown
	}
	return send(h.ho)
}

// TestChangedAndTake: a cache change returns once the other node applied
// it; a takeover finds the node holding the session, which then routes the
// session's stanzas to the node that took it; an id no node has fails as
// soon as every node said so.
func TestChangedAndTake(t *testing.T) {
	url := natsURL(t)
	name := clusterName()
	ctx := context.Background()
	a, b := startNode(t, url, name, "a"), startNode(t, url, name, "b")
	var dropped sync.Map
	b.OnChange("roster", func(owner jid.JID) {
		time.Sleep(100 * time.Millisecond) // a slow drop: Changed must wait for it
		dropped.Store(owner.String(), true)
	})
	for _, n := range []*node{a, b} {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Stop(context.Background()) })
	}
	ho := &sm.Handover{JID: "bob@x/phone", In: 3, Acked: 1, Unacked: [][]byte{[]byte("<message/>")}, Available: true}
	if err := b.ServeHandovers(ctx, handovers{id: "secret", ho: ho}); err != nil {
		t.Fatal(err)
	}
	if err := a.ServeHandovers(ctx, handovers{}); err != nil {
		t.Fatal(err)
	}
	waitLive(t, a, 1)
	waitLive(t, b, 1)

	a.Changed(ctx, "roster", jid.MustParse("alice@x"))
	if _, ok := dropped.Load("alice@x"); !ok {
		t.Fatal("Changed returned before the other node dropped its copy")
	}

	got, err := a.Take(ctx, "secret", jid.MustParse("bob@x"), 1)
	if err != nil || got.JID != ho.JID || got.In != 3 || len(got.Unacked) != 1 {
		t.Fatalf("Take: %+v, %v", got, err)
	}
	// b points its router at a once a confirmed, just after a returned.
	deadline := time.Now().Add(5 * time.Second)
	for s := b.rt.Session(jid.MustParse("bob@x/phone")); s == nil || !s.Remote() || !s.State().Available; s = b.rt.Session(jid.MustParse("bob@x/phone")) {
		if time.Now().After(deadline) {
			t.Fatalf("the node that handed the session over does not route to its new node: %v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}

	start := time.Now()
	if _, err := a.Take(ctx, "unknown", jid.MustParse("bob@x"), 0); !errors.Is(err, sm.ErrUnknown) {
		t.Fatalf("Take of an unknown id: %v, want ErrUnknown", err)
	}
	if d := time.Since(start); d > takeTimeoutForTest {
		t.Fatalf("Take of an unknown id took %v: it waits for the answers, not the timeout", d)
	}
}

// takeTimeoutForTest is well under c2s's takeover timeout (5s): an
// unknown id is answered by every node at once.
const takeTimeoutForTest = 2 * time.Second

// TestDetachedKept: what a node keeps for a detached session is treated as
// undelivered, once and in order, by the node that reaps it, and a
// released session's stanzas are not.
func TestDetachedKept(t *testing.T) {
	ctx := context.Background()
	a, b := startedPair(t)
	for _, n := range []*node{a, b} {
		if err := n.ServeHandovers(ctx, handovers{}); err != nil {
			t.Fatal(err)
		}
	}
	bob, carol := jid.MustParse("bob@x/phone"), jid.MustParse("carol@x/pc")
	b.Keep("id-bob", bob, 2, []byte("<message xmlns='jabber:client' id='m2'/>"))
	b.Keep("id-bob", bob, 3, []byte("<message xmlns='jabber:client' id='m3'/>"))
	b.Keep("id-bob", bob, 3, []byte("<message xmlns='jabber:client' id='m3'/>")) // kept twice
	b.Keep("id-carol", carol, 1, []byte("<message xmlns='jabber:client' id='c1'/>"))
	b.Release("id-carol")
	time.Sleep(500 * time.Millisecond) // the release purges in the background

	// b's sessions as a sees them, then b dies as far as a can tell.
	var gone []*remoteSession
	for _, full := range []jid.JID{bob, carol} {
		rs := &remoteSession{c: a.Cluster, node: "b", full: full}
		rs.s, _ = a.rt.BindRemote(full, rs)
		gone = append(gone, rs)
	}
	a.undeliverDetached(ctx, "b", gone)
	a.mod.mu.Lock()
	got := strings.Join(a.mod.undelivered, "\n")
	a.mod.mu.Unlock()
	want := "bob@x/phone <message xmlns='jabber:client' id='m2'/>\nbob@x/phone <message xmlns='jabber:client' id='m3'/>"
	if got != want {
		t.Fatalf("undelivered:\n%s\nwant:\n%s", got, want)
	}
	// Purged: a second reap finds nothing.
	a.mod.undelivered = nil
	a.undeliverDetached(ctx, "b", gone)
	if len(a.mod.undelivered) != 0 {
		t.Fatalf("kept stanzas handled twice: %v", a.mod.undelivered)
	}
}

// benchNodes starts two nodes that see each other, b handing over ho.
func benchNodes(b *testing.B, ho *sm.Handover) (a, other *node) {
	url := natsURL(b)
	name := clusterName()
	ctx := context.Background()
	a, other = startNode(b, url, name, "a"), startNode(b, url, name, "b")
	other.OnChange("roster", func(jid.JID) {})
	for _, n := range []*node{a, other} {
		if err := n.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Stop(context.Background()) })
	}
	if err := other.ServeHandovers(ctx, handovers{id: "secret", ho: ho}); err != nil {
		b.Fatal(err)
	}
	for a.liveNodes() != 1 {
		time.Sleep(10 * time.Millisecond)
	}
	return a, other
}

// BenchmarkChanged is the cost a roster or blocklist change adds to its
// IQ in a two-node cluster: announce and wait for the other's answer.
func BenchmarkChanged(b *testing.B) {
	a, _ := benchNodes(b, &sm.Handover{})
	owner := jid.MustParse("alice@x")
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		a.Changed(ctx, "roster", owner)
	}
}

// BenchmarkTake is a takeover's round trips (ask, handover, confirm) with
// 20 unacknowledged stanzas of 300 bytes, without the c2s side.
func BenchmarkTake(b *testing.B) {
	ho := &sm.Handover{JID: "bob@x/phone", Available: true}
	for range 20 {
		ho.Unacked = append(ho.Unacked, []byte(strings.Repeat("x", 300)))
	}
	a, _ := benchNodes(b, ho)
	owner := jid.MustParse("bob@x")
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Take(ctx, "secret", owner, 0); err != nil {
			b.Fatal(err)
		}
	}
}
