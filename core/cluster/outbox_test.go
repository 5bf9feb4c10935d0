package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
)

// track sends a forward to dest as published, and returns its number.
func (o *outbox) track(dest string, fw forward) uint64 {
	var got uint64
	o.send(dest, fw, false, func(seq uint64) error { got = seq; return nil })
	return got
}

func fwd(s string) forward { return forward{data: []byte(s)} }

func datas(fws []forward) []string {
	var out []string
	for _, f := range fws {
		out = append(out, string(f.data))
	}
	return out
}

// TestOutbox: a forward is done once acknowledged or handed back, never
// twice; those before an acknowledged run, those up to one that found no
// responder, and all of a dead node's are handed back, in order; only a
// node that never acknowledges has its forwards forgotten after a while;
// a node that acknowledges is probed for those it leaves unanswered.
func TestOutbox(t *testing.T) {
	o := newOutbox(0)
	for i := 1; i <= 5; i++ {
		if seq := o.track("b.in", fwd(fmt.Sprint(i))); seq != uint64(i) {
			t.Fatalf("forward %d numbered %d", i, seq)
		}
	}
	if err := o.send("b.in", fwd("refused"), false, func(uint64) error { return errors.New("closed") }); err == nil {
		t.Fatal("a refused publish reported sent")
	}
	if seq := o.track("b.room", fwd("r1")); seq != 1 {
		t.Fatalf("another subject of the same node shares the numbering: %d", seq)
	}
	if lost := o.acked("b.in", 1, 1); len(lost) != 0 {
		t.Fatalf("acknowledging 1..1 handed back %v", datas(lost))
	}
	// No responders for 3: 2, which went the same way before it, with it.
	if got := datas(o.takeThrough("b.in", 3)); !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("no responders for 3 handed back %v, want [2 3]", got)
	}
	if got := o.takeThrough("b.in", 3); len(got) != 0 {
		t.Fatalf("handed back twice: %v", datas(got))
	}
	// A run starting at 5: 4 never came.
	if lost := datas(o.acked("b.in", 5, 5)); !slices.Equal(lost, []string{"4"}) {
		t.Fatalf("acknowledging 5..5 handed back %v, want [4]", lost)
	}
	if lost := o.acked("b.in", 1, 99); lost != nil {
		t.Fatalf("an acknowledgement beyond what was sent was applied: %v", datas(lost))
	}
	o.track("b.in", fwd("6"))
	o.track("b.in", fwd("7"))
	o.track("c.in", fwd("c1"))
	if lost := datas(o.drop("b")); !slices.Equal(lost, []string{"6", "7", "r1"}) && !slices.Equal(lost, []string{"r1", "6", "7"}) {
		t.Fatalf("dropping b handed back %v, want 6, 7 and r1", lost)
	}
	if lost := o.drop("b"); len(lost) != 0 {
		t.Fatalf("a second drop handed back %v", datas(lost))
	}
	if seq := o.track("b.in", fwd("8")); seq != 8 {
		t.Fatalf("numbering restarted after a drop: %d", seq)
	}

	// b acknowledges (above): its forward 8, unanswered for staleGens
	// generations, makes the outbox probe b, once a generation while it
	// lasts. c never acknowledged: its forward is forgotten forgetGens
	// old, and never probed.
	for gen := 1; gen <= forgetGens; gen++ {
		probe := o.tick()
		want := []string(nil)
		if gen >= staleGens {
			want = []string{"b.in"}
		}
		if !slices.Equal(probe, want) {
			t.Fatalf("generation %d: probe %v, want %v", gen, probe, want)
		}
		if gen < forgetGens && len(o.peers["c.in"].pending) != 1 {
			t.Fatalf("generation %d: the forward to c forgotten too soon", gen)
		}
	}
	if got := o.takeThrough("c.in", 1); len(got) != 0 {
		t.Fatalf("a forward to a node that never acknowledges outlived %d generations", forgetGens)
	}
	if got := o.takeThrough("b.in", 8); len(got) != 1 {
		t.Fatal("a generation forgot a forward to a node that acknowledges")
	}
	if probe := o.tick(); len(probe) != 0 {
		t.Fatalf("probe %v with nothing unanswered", probe)
	}
}

// TestOutboxMax: a bounded send that would take its destination over the
// bound is refused, unsent; takeOver then returns every pending forward,
// in order, and only while still over; acknowledged forwards count no
// more.
func TestOutboxMax(t *testing.T) {
	o := newOutbox(10)
	sent := 0
	publish := func(uint64) error { sent++; return nil }
	for _, d := range []string{"aaaa", "bbbb"} {
		if err := o.send("b.in", fwd(d), true, publish); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.send("b.in", fwd("cccc"), true, publish); !errors.Is(err, errOutboxFull) || sent != 2 {
		t.Fatalf("12 bytes over a bound of 10: %v, %d published", err, sent)
	}
	if got := o.takeOver("b.in", 1); got != nil {
		t.Fatalf("took %v back with room left", datas(got))
	}
	if got := datas(o.takeOver("b.in", 4)); !slices.Equal(got, []string{"aaaa", "bbbb"}) {
		t.Fatalf("took back %v, want [aaaa bbbb]", got)
	}
	if err := o.send("b.in", fwd("cccc"), true, publish); err != nil {
		t.Fatal(err)
	}
	// Alone, a forward larger than the bound still goes.
	if err := o.send("c.in", fwd("0123456789abc"), true, publish); err != nil {
		t.Fatalf("a forward larger than the bound, to an empty outbox: %v", err)
	}
	if err := o.send("c.in", fwd("d"), false, publish); err != nil {
		t.Fatalf("an unbounded send: %v", err)
	}
	o.acked("b.in", 3, 3)
	if p := o.peers["b.in"]; p.bytes != 0 || len(p.pending) != 0 {
		t.Fatalf("after the acknowledgement: %d bytes in %d forwards", p.bytes, len(p.pending))
	}
	if got := o.nodes(); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("nodes with forwards pending: %v, want [c]", got)
	}
}

func TestParseLostSubject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		dest string
		seq  uint64
		ok   bool
	}{
		{"b.in.7", "b.in", 7, true},
		{"node-2.room.18446744073709551615", "node-2.room", 1<<64 - 1, true},
		{"b.7", "", 0, false},
		{"a.b.in.7", "", 0, false},
		{"b.in.x", "", 0, false},
		{"", "", 0, false},
	} {
		dest, seq, ok := parseLostSubject(tc.in)
		if dest != tc.dest || seq != tc.seq || ok != tc.ok {
			t.Errorf("parseLostSubject(%q) = %q, %d, %v; want %q, %d, %v", tc.in, dest, seq, ok, tc.dest, tc.seq, tc.ok)
		}
	}
}

// sink is a local session's connection that keeps what it is sent.
type sink struct {
	mu  sync.Mutex
	got []string
}

func (s *sink) Send(el *xmlstream.Element) bool {
	s.mu.Lock()
	s.got = append(s.got, el.Attr("id"))
	s.mu.Unlock()
	return true
}

func (s *sink) Close(string, string) {}

func (s *sink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func (o *outbox) unanswered() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, p := range o.peers {
		n += len(p.pending)
	}
	return n
}

func (m *modsLog) taken() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.undelivered)
}

func msg(id string) *xmlstream.Element {
	return xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("id", id).SetAttr("type", "chat")
}

// TestForwardsAnsweredFor: a live node acknowledges what it was forwarded,
// so the sender keeps nothing; a forward NATS lost is handed back as soon
// as a later one is acknowledged; and a node that takes forwards but never
// answers (cut off from NATS, its connection not yet closed) gets them
// handed back when its lease runs out, in order.
func TestForwardsAnsweredFor(t *testing.T) {
	ctx := context.Background()
	a, b := startedPair(t)
	url := natsURL(t)

	bob := jid.MustParse("bob@x/phone")
	phone := &sink{}
	b.rt.Bind(bob, phone)
	rs := &remoteSession{c: a.Cluster, node: "b", full: bob}
	rs.s, _ = a.rt.BindRemote(bob, rs)
	for i := range 3 {
		if !rs.Send(msg(fmt.Sprint("m", i))) {
			t.Fatal("forward not published")
		}
	}
	waitFor(t, "b's acknowledgements", func() bool { return a.out.unanswered() == 0 })
	if got := phone.ids(); !slices.Equal(got, []string{"m0", "m1", "m2"}) {
		t.Fatalf("bob got %v", got)
	}

	// Sessions forward from many goroutines at once: b must see the
	// numbers in order, or it would take one overtaken for lost.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				rs.Send(msg(fmt.Sprint("g", g, "-", i)))
			}
		}()
	}
	wg.Wait()
	waitFor(t, "b's acknowledgements of concurrent forwards", func() bool { return a.out.unanswered() == 0 })
	if got := a.mod.taken(); len(got) != 0 {
		t.Fatalf("concurrent forwards handed back as lost (%d), though b got them: %v", len(got), got[0])
	}
	if n := len(phone.ids()); n != 3+8*200 {
		t.Fatalf("bob got %d forwards, want %d", n, 3+8*200)
	}
	phone.mu.Lock()
	phone.got = phone.got[:3]
	phone.mu.Unlock()

	// A forward NATS dropped: numbered, never published.
	a.out.track(destination("b", "in"), forward{r: rs, data: []byte(msg("dropped").String())})
	rs.Send(msg("m3"))
	waitFor(t, "the dropped forward handed back", func() bool { return len(a.mod.taken()) == 1 })
	if got := a.mod.taken()[0]; !strings.Contains(got, "dropped") || !strings.HasPrefix(got, "bob@x/phone ") {
		t.Fatalf("handed back: %s", got)
	}
	waitFor(t, "b's acknowledgement of m3", func() bool { return a.out.unanswered() == 0 })

	// Lost in flight again, and nothing follows it: a probe, a second or
	// so later, makes b answer, and the forward is handed back.
	a.out.track(destination("b", "in"), forward{r: rs, data: []byte(msg("dropped-last").String())})
	waitFor(t, "the last forward, lost, handed back after a probe", func() bool { return len(a.mod.taken()) == 2 })
	if got := a.mod.taken()[1]; !strings.Contains(got, "dropped-last") {
		t.Fatalf("handed back: %s", got)
	}
	waitFor(t, "b's acknowledgement of the probe", func() bool { return a.out.unanswered() == 0 })

	// Node c takes its forwards off NATS and never answers.
	rc, swallowed := silentNode(t, a, url, "c", jid.MustParse("carol@x/pc"))
	before := len(a.mod.taken())
	rc.Send(msg("c1"))
	rc.Send(msg("c2"))
	for range 2 {
		select {
		case <-swallowed:
		case <-time.After(5 * time.Second):
			t.Fatal("the forwards to c did not reach NATS")
		}
	}
	time.Sleep(5 * ackEvery)
	if n := len(a.mod.taken()); n != before {
		t.Fatalf("forwards to a silent node handed back before its lease ran out: %v", a.mod.taken())
	}
	expire(a, "c")
	a.reap(ctx)
	waitFor(t, "c's forwards handed back after its lease", func() bool { return len(a.mod.taken()) == before+2 })
	got := a.mod.taken()[before:]
	want := []string{"carol@x/pc " + msg("c1").String(), "carol@x/pc " + msg("c2").String()}
	if !slices.Equal(got, want) {
		t.Fatalf("after c's lease, handed back:\n%v\nwant:\n%v", got, want)
	}
	if n := a.out.unanswered(); n != 0 {
		t.Fatalf("%d forwards still kept after the reap", n)
	}
}

// silentNode makes node a see a node named node, with user's session,
// that takes its forwards off NATS (into the channel returned) and never
// answers for them: cut off from NATS without its connection closing.
func silentNode(t *testing.T, a *node, url, node string, user jid.JID) (*remoteSession, chan *nats.Msg) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	swallowed := make(chan *nats.Msg, 1024)
	if _, err := nc.ChanSubscribe(a.subj(subjNode+node+".in"), swallowed); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	rs := &remoteSession{c: a.Cluster, node: node, full: user}
	rs.s, _ = a.rt.BindRemote(user, rs)
	a.mu.Lock()
	a.remote[user] = rs
	a.seen[node] = time.Now()
	a.mu.Unlock()
	return rs, swallowed
}

// gated makes a's backend store nothing until openGate is called (at the
// latest when the test ends, before its nodes stop: Stop waits for the
// hand-backs).
func gated(t *testing.T, a *node) (openGate func()) {
	ch := make(chan struct{})
	a.mod.mu.Lock()
	a.mod.gate = ch
	a.mod.mu.Unlock()
	openGate = sync.OnceFunc(func() { close(ch) })
	t.Cleanup(openGate)
	return openGate
}

// expire makes node's lease run out at a's next reap.
func expire(a *node, node string) {
	a.mu.Lock()
	a.seen[node] = time.Now().Add(-time.Hour)
	a.mu.Unlock()
}

// TestOutboxBound: what a node keeps for a node that never answers is
// bounded. A forward that would go over the bound has the pending ones
// handed back first, in order; hand-backs are stored by a goroutine of
// their own, so that a reap (on the heartbeat goroutine) never waits for
// a slow backend; and a sender waits only while more than a bound's worth
// is still being stored.
func TestOutboxBound(t *testing.T) {
	a, _ := startedPair(t)
	openGate := gated(t, a)
	rc, swallowed := silentNode(t, a, natsURL(t), "c", jid.MustParse("carol@x/pc"))
	size := len(msg("c00").AppendXML(nil, ""))
	a.out.mu.Lock()
	a.out.max = 10 * size
	a.out.mu.Unlock()

	// 1..10 fill the outbox; 11 hands them back and is kept; so is 20.
	for i := 1; i <= 20; i++ {
		if !rc.Send(msg(fmt.Sprintf("c%02d", i))) {
			t.Fatalf("forward %d not published", i)
		}
	}
	if n := a.out.unanswered(); n != 10 {
		t.Fatalf("%d forwards kept, want 10 (11..20)", n)
	}
	if st := a.Stats(); st.Unacknowledged != 10 || st.UnacknowledgedBytes != 10*size || st.HandedBack != 10 || st.HandBackBytes != 10*size {
		t.Fatalf("stats %+v, want 10 forwards of %d bytes unacknowledged, 10 handed back and not stored", st, size)
	}
	// 21 hands 11..20 back too: with 1..10 not stored yet, that is more
	// than the bound waiting, and the sender waits for the backend.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		rc.Send(msg("c21"))
	}()
	waitFor(t, "11..20 taken back", func() bool { return a.out.unanswered() == 0 })
	select {
	case <-sent:
		t.Fatal("a sender went on while two bounds' worth of hand-backs waited for the backend")
	case <-time.After(100 * time.Millisecond):
	}
	// A reap hands back at once, whatever the backend's speed: its
	// heartbeats must go on.
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		expire(a, "c")
		a.reap(context.Background())
	}()
	select {
	case <-reaped:
	case <-time.After(5 * time.Second):
		t.Fatal("the reap waited for the backend to store what it handed back")
	}

	// 21, sent once the backend took 1..20, went to c after its reap:
	// the next reap hands it back.
	openGate()
	<-sent
	waitFor(t, "every forward handed back", func() bool { return len(a.mod.taken()) >= 21 })
	for i, got := range a.mod.taken() {
		if want := "carol@x/pc " + msg(fmt.Sprintf("c%02d", i+1)).String(); got != want {
			t.Fatalf("hand-back %d: %s, want %s", i, got, want)
		}
	}
	waitFor(t, "the hand-back queue to empty", func() bool { return a.Stats().HandBackBytes == 0 })
	if st := a.Stats(); st.HandedBack != 21 || st.Unacknowledged != 0 {
		t.Fatalf("stats %+v, want 21 handed back and none unacknowledged", st)
	}
	if n := len(swallowed); n != 21 {
		t.Fatalf("%d forwards reached NATS, want 21", n)
	}
}

// TestReapEndsSessionsAfterTheirForwards: a dead node's sessions end
// only once the forwards it never answered for are stored, so that a
// message sent to one of them meanwhile is stored after them, not before.
func TestReapEndsSessionsAfterTheirForwards(t *testing.T) {
	a, _ := startedPair(t)
	openGate := gated(t, a)
	dave := jid.MustParse("dave@x/pc")
	rd, _ := silentNode(t, a, natsURL(t), "d", dave)
	rd.Send(msg("d1"))
	rd.Send(msg("d2"))
	expire(a, "d")
	a.reap(context.Background())
	if a.rt.Session(dave) == nil {
		t.Fatal("dave's session ended before the forwards to him were stored")
	}
	rd.Send(msg("d3")) // routed to him while d1 and d2 are being stored
	openGate()
	waitFor(t, "every forward to dave handed back", func() bool { return len(a.mod.taken()) == 3 })
	for i, got := range a.mod.taken() {
		if want := "dave@x/pc " + msg(fmt.Sprint("d", i+1)).String(); got != want {
			t.Fatalf("hand-back %d: %s, want %s", i, got, want)
		}
	}
	waitFor(t, "dave's session to end", func() bool { return a.rt.Session(dave) == nil })
}

// TestHandBackRoutedToAFullOutbox: handling a forward handed back can
// route it to another node (the user's other resource), whose outbox may
// be full too. The handler is then the sender that waits for the
// handler: it waits a lease at most, and everything is handled.
func TestHandBackRoutedToAFullOutbox(t *testing.T) {
	a, _ := startedPair(t)
	url := natsURL(t)
	rc, _ := silentNode(t, a, url, "c", jid.MustParse("carol@x/pc"))
	re, _ := silentNode(t, a, url, "e", jid.MustParse("carol@x/phone"))
	size := len(msg("c00").AppendXML(nil, ""))
	a.out.mu.Lock()
	a.out.max = 10 * size
	a.out.mu.Unlock()
	for i := 1; i <= 10; i++ {
		re.Send(msg(fmt.Sprintf("e%02d", i))) // e's outbox, full
	}
	for i := 1; i <= 5; i++ {
		rc.Send(msg(fmt.Sprintf("c%02d", i)))
	}
	var once sync.Once
	a.mod.mu.Lock()
	a.mod.then = func(*xmlstream.Element) {
		// c01, handed back, goes on to carol's phone on e.
		once.Do(func() { re.Send(msg("c01-again")) })
	}
	a.mod.mu.Unlock()
	expire(a, "c")
	a.reap(context.Background())
	waitWithin(t, "every forward handed back", 10*time.Second, func() bool { return len(a.mod.taken()) == 15 })
	if got := a.mod.taken()[14]; !strings.Contains(got, "e10") {
		t.Fatalf("the last one handed back: %s, want e10", got)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) { waitWithin(t, what, 5*time.Second, ok) }

func waitWithin(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gatedSink is a local session's connection whose first Send waits at a
// gate.
type gatedSink struct {
	sink
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (s *gatedSink) Send(el *xmlstream.Element) bool {
	s.once.Do(func() {
		close(s.entered)
		<-s.gate
	})
	return s.sink.Send(el)
}

// TestStopAnswersForWhatItDrains: a node that stops handles what NATS
// still held for it and acknowledges it before it leaves, so that the
// sender does not hand those forwards back a lease later (delivering
// them twice).
func TestStopAnswersForWhatItDrains(t *testing.T) {
	url := natsURL(t)
	name := clusterName()
	ctx := context.Background()
	a, b := startNode(t, url, name, "a"), startNode(t, url, name, "b")
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(context.Background()) })
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitLive(t, a, 1)

	bob := jid.MustParse("bob@x/phone")
	phone := &gatedSink{entered: make(chan struct{}), gate: make(chan struct{})}
	b.rt.Bind(bob, phone)
	rs := &remoteSession{c: a.Cluster, node: "b", full: bob}
	rs.s, _ = a.rt.BindRemote(bob, rs)
	const n = 20
	for i := range n {
		rs.Send(msg(fmt.Sprint("m", i)))
	}
	// The first forward waits in b's handler, the others in its
	// subscription, while b stops.
	<-phone.entered
	stopped := make(chan struct{})
	go func() {
		b.Stop(context.Background())
		close(stopped)
	}()
	time.Sleep(200 * time.Millisecond)
	close(phone.gate)
	<-stopped
	// Well within the lease (2 s), after which a would hand back what
	// is still unanswered.
	waitWithin(t, "acknowledgement of every forward", time.Second, func() bool { return a.out.unanswered() == 0 })
	if got := phone.ids(); len(got) != n {
		t.Fatalf("bob got %d of %d: %v", len(got), n, got)
	}
	if got := a.mod.taken(); len(got) != 0 {
		t.Fatalf("handed back as well: %v", got)
	}
}
