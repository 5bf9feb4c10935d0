package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/archive/journal"
	"github.com/koi-im/koi/sdk"
)

func openJournal(t testing.TB, path string, max int64) *journal.Journal {
	t.Helper()
	j, err := journal.Open(path, max, nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// syncBuffer is a log destination that the writer's goroutines share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkInOrder fails unless the store holds messages 0..n-1 of owner,
// each once, stored in the order they were committed.
func checkInOrder(t *testing.T, st *store, owner string, n int) {
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.order) != n {
		t.Fatalf("%d messages stored, want %d", len(st.order), n)
	}
	for i, k := range st.order {
		if want := fmt.Sprintf("%s/id%06d", owner, i); k != want {
			t.Fatalf("message %d stored is %s, want %s", i, k, want)
		}
	}
}

func TestJournalTakesTheBatchesWhileTheBackendIsDown(t *testing.T) {
	st := newStore()
	g := &gate{st: st}
	g.setDown(true)
	var logs syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	// The queue holds 8 messages; 300 are committed during the outage,
	// none refused, because the journal takes them.
	w := NewWriter(g.opener, Options{QueueSize: 8, BatchSize: 4, FlushInterval: time.Millisecond,
		BlockTimeout: 2 * time.Second, RetryMin: time.Millisecond, OutageLogInterval: 50 * time.Millisecond,
		Journal: openJournal(t, filepath.Join(t.TempDir(), "h.journal"), 1<<20)}, log)
	defer closeWriter(t, w)
	ctx := context.Background()
	const n = 300
	for i := range n {
		if err := w.Append(ctx, msg("alice@example.com", i)); err != nil {
			t.Fatalf("append %d during the outage: %v", i, err)
		}
		if i == n/2 {
			time.Sleep(120 * time.Millisecond) // long enough for the outage to be logged again
		}
	}
	waitFor(t, "the queue in the journal", func() bool { return w.Stats().Journaled == n })
	if st.count() != 0 {
		t.Fatalf("%d stored while the backend was down", st.count())
	}
	g.setDown(false)
	waitFor(t, "the journal replayed", func() bool { s := w.Stats(); return st.count() == n && s.JournalBatches == 0 })
	// Messages committed after the recovery go straight to the backend.
	for i := n; i < n+10; i++ {
		if err := w.Append(ctx, msg("alice@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the new messages", func() bool { return st.count() == n+10 })
	checkInOrder(t, st, "alice@example.com", n+10)
	out := logs.String()
	for _, want := range []string{
		"archive backend unreachable; batches go to the journal",
		"batches (", "messages) journaled",
		"archive backend reachable again",
		"archive journal replayed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// The outage is logged at its start and then at most every 50ms, not
	// at each of the many failed attempts.
	if k := strings.Count(out, "archive backend unreachable"); k > 8 {
		t.Errorf("the outage was logged %d times:\n%s", k, out)
	}
}

func TestTheJournalReplaysInOrderThroughBrokenStreams(t *testing.T) {
	st := newStore()
	st.delay = time.Millisecond
	g := &gate{st: st}
	g.setDown(true)
	w := NewWriter(g.opener, Options{QueueSize: 16, BatchSize: 5, MaxInFlight: 4, FlushInterval: time.Millisecond,
		RetryMin: time.Millisecond, Journal: openJournal(t, filepath.Join(t.TempDir(), "h.journal"), 1<<20)}, nil)
	ctx := context.Background()
	const n = 400
	for i := range n / 2 {
		if err := w.Append(ctx, msg("bob@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	g.setDown(false)
	// Break streams during the replay while more messages come.
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(5 * time.Second)
		for w.Stats().Reconnects < 3 && time.Now().Before(deadline) {
			g.breakN.Store(3)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for i := n / 2; i < n; i++ {
		if err := w.Append(ctx, msg("bob@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	g.breakN.Store(0)
	waitFor(t, "everything stored", func() bool { return st.count() == n })
	closeWriter(t, w)
	if s := w.Stats(); s.Reconnects == 0 {
		t.Errorf("no stream broke (stats %+v): the test did not test", s)
	}
}

func TestAFullJournalRefuses(t *testing.T) {
	st := newStore()
	g := &gate{st: st}
	g.setDown(true)
	// Room for about three records of four messages.
	rec := int64(len(encodeRecord(msgsOf("a@example.com", 0, 4)))) + 8
	w := NewWriter(g.opener, Options{QueueSize: 4, BatchSize: 4, FlushInterval: time.Millisecond,
		BlockTimeout: 300 * time.Millisecond, RetryMin: time.Millisecond,
		Journal: openJournal(t, filepath.Join(t.TempDir(), "h.journal"), 3*rec+rec/2)}, nil)
	defer closeWriter(t, w)
	ctx := context.Background()
	var accepted int
	var err error
	for i := range 100 {
		if err = w.Append(ctx, msg("a@example.com", i)); err != nil {
			break
		}
		accepted++
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("after %d messages: %v, want ErrFull", accepted, err)
	}
	// Three records in the journal and a full queue: 16 messages (one
	// fewer if the last record was cut before its fourth message came).
	if accepted < 13 || accepted > 16 {
		t.Errorf("%d messages accepted, want 16 (12 journaled, 4 in memory)", accepted)
	}
	g.setDown(false)
	waitFor(t, "everything accepted stored", func() bool { return st.count() == accepted })
	if err := w.Append(ctx, msg("a@example.com", accepted)); err != nil {
		t.Fatalf("after the replay: %v", err)
	}
	waitFor(t, "the next one", func() bool { return st.count() == accepted+1 })
}

func msgsOf(owner string, from, n int) (out []sdk.ArchivedMessage) {
	for i := from; i < from+n; i++ {
		out = append(out, msg(owner, i))
	}
	return out
}

func TestTheJournalSurvivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.journal")
	st := newStore()
	g := &gate{st: st}
	g.setDown(true)
	w := NewWriter(g.opener, Options{FlushInterval: time.Millisecond, RetryMin: time.Millisecond,
		Journal: openJournal(t, path, 1<<20)}, nil)
	for i := range 50 {
		if err := w.Append(context.Background(), msg("carol@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Shutting down with the backend away loses nothing: the queue goes
	// to the journal.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close with the backend down: %v", err)
	}
	if st.count() != 0 {
		t.Fatal("stored while down")
	}

	w2 := NewWriter(g.opener, Options{FlushInterval: time.Millisecond, RetryMin: time.Millisecond,
		Journal: openJournal(t, path, 1<<20)}, nil)
	if s := w2.Stats(); s.Journaled != 50 {
		t.Errorf("the restarted writer found %d journaled messages, want 50", s.Journaled)
	}
	g.setDown(false)
	for i := 50; i < 60; i++ {
		if err := w2.Append(context.Background(), msg("carol@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A query waits for the owner's journaled messages too.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := w2.Sync(sctx, "carol@example.com"); err != nil {
		t.Fatal(err)
	}
	if st.count() != 60 {
		t.Fatalf("after Sync %d stored, want 60", st.count())
	}
	closeWriter(t, w2)
	checkInOrder(t, st, "carol@example.com", 60)
}

func TestTheQueuePastTheHighWaterMarkGoesToTheJournal(t *testing.T) {
	st := newStore()
	st.delay = 20 * time.Millisecond // slower than the traffic
	w := NewWriter(LocalStream(st), Options{QueueSize: 64, HighWater: 8, BatchSize: 4, MaxInFlight: 1,
		FlushInterval: time.Millisecond, Journal: openJournal(t, filepath.Join(t.TempDir(), "h.journal"), 1<<20)}, nil)
	var most int
	for i := range 200 {
		if err := w.Append(context.Background(), msg("dave@example.com", i)); err != nil {
			t.Fatal(err)
		}
		most = max(most, w.Stats().Journaled)
	}
	closeWriter(t, w)
	if most == 0 {
		t.Error("nothing went to the journal although the queue passed its high-water mark")
	}
	checkInOrder(t, st, "dave@example.com", 200)
}

// countingJournal notes how many records each Append asked for and
// whether the journal took them.
type countingJournal struct {
	*journal.Journal
	mu    sync.Mutex
	calls []string
}

func (c *countingJournal) Append(records ...[]byte) error {
	err := c.Journal.Append(records...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.calls = append(c.calls, fmt.Sprintf("%d refused", len(records)))
	} else {
		c.calls = append(c.calls, fmt.Sprintf("%d", len(records)))
	}
	return err
}

func (c *countingJournal) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.calls, ",")
}

func TestASpillRoundIsOneJournalWrite(t *testing.T) {
	st := newStore()
	g := &gate{st: st}
	g.setDown(true)
	j := &countingJournal{Journal: openJournal(t, filepath.Join(t.TempDir(), "h.journal"), 1<<20)}
	w := NewWriter(g.opener, Options{QueueSize: 40, BatchSize: 4, FlushInterval: time.Hour,
		RetryMin: time.Millisecond, Journal: j}, nil)
	// Ten full batches committed at once during an outage: one record
	// each, all in one write.
	if err := w.Append(context.Background(), msgsOf("erin@example.com", 0, 40)...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batches journaled", func() bool { return w.Stats().Journaled == 40 })
	if got := j.log(); got != "10" {
		t.Fatalf("journal appends %q, want one of 10 records", got)
	}
	if s := w.Stats(); s.JournalBatches != 10 {
		t.Fatalf("%d journal records, want 10", s.JournalBatches)
	}
	g.setDown(false)
	waitFor(t, "the journal replayed", func() bool { return st.count() == 40 })
	closeWriter(t, w)
	checkInOrder(t, st, "erin@example.com", 40)
}

func TestANearlyFullJournalTakesHalfTheBatchesThenAQuarter(t *testing.T) {
	st := newStore()
	g := &gate{st: st}
	g.setDown(true)
	// Room for the first five batches of four messages, not a sixth.
	var room int64
	for k := range 5 {
		room += int64(len(encodeRecord(msgsOf("fay@example.com", 4*k, 4)))) + 8
	}
	path := filepath.Join(t.TempDir(), "h.journal")
	j := &countingJournal{Journal: openJournal(t, path, room+8)}
	w := NewWriter(g.opener, Options{QueueSize: 40, BatchSize: 4, FlushInterval: time.Hour,
		BlockTimeout: 100 * time.Millisecond, RetryMin: time.Millisecond, Journal: j}, nil)
	if err := w.Append(context.Background(), msgsOf("fay@example.com", 0, 40)...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "half the batches journaled", func() bool { return w.Stats().Journaled == 20 })
	// Ten refused, the first five taken; of the other five, none fits:
	// five, two and one refused, and the rest waits in memory.
	waitFor(t, "the halving to end", func() bool { return strings.HasPrefix(j.log(), "10 refused,5,5 refused,2 refused,1 refused") })
	if s := w.Stats(); s.Pending != 20 || s.JournalBatches != 5 {
		t.Fatalf("stats %+v, want 20 messages in memory and 5 journal records", s)
	}
	g.setDown(false)
	waitFor(t, "everything stored", func() bool { return st.count() == 40 })
	closeWriter(t, w)
	// The journal's batches come first, then those that stayed in memory.
	checkInOrder(t, st, "fay@example.com", 40)
}

// heldStream counts the messages sent on it and acknowledges nothing
// until released.
type heldStream struct {
	Stream
	sent *atomic.Int64
}

func (h heldStream) Send(id uint64, msgs []sdk.ArchivedMessage) error {
	h.sent.Add(int64(len(msgs)))
	return h.Stream.Send(id, msgs)
}

// heldStore blocks every AppendArchive until release is closed.
type heldStore struct {
	*store
	release chan struct{}
}

func (h heldStore) AppendArchive(ctx context.Context, msgs []sdk.ArchivedMessage) error {
	<-h.release
	return h.store.AppendArchive(ctx, msgs)
}

func TestAWideInFlightWindowStillLetsTheJournalTakeTheOverflow(t *testing.T) {
	st := newStore()
	held := heldStore{store: st, release: make(chan struct{})}
	var sent atomic.Int64
	local := LocalStream(held)
	open := func(ctx context.Context) (Stream, error) {
		s, err := local(ctx)
		if err != nil {
			return nil, err
		}
		return heldStream{Stream: s, sent: &sent}, nil
	}
	// 64 batches of 4 in flight would hold the whole queue of 64, which
	// would then never pass its mark: memory's batches in flight stop at
	// 64-32-4 = 28 messages, and the queue behind them overflows into the
	// journal.
	w := NewWriter(open, Options{QueueSize: 64, HighWater: 32, BatchSize: 4, MaxInFlight: 64,
		FlushInterval: time.Hour, Journal: openJournal(t, filepath.Join(t.TempDir(), "h.journal"), 1<<20)}, nil)
	for i := 0; i < 64; i += 4 {
		if err := w.Append(context.Background(), msgsOf("gus@example.com", i, 4)...); err != nil {
			t.Fatal(err)
		}
		// The batch is sent, or waits in the queue behind a full window.
		waitFor(t, "the batch taken", func() bool {
			n := int(sent.Load())
			return n == i+4 || (n == 28 && n+w.Stats().Journaled <= i+4)
		})
	}
	// Nothing is acknowledged, so the journal keeps all it took.
	waitFor(t, "the overflow journaled", func() bool { return w.Stats().Journaled == 36 })
	close(held.release)
	waitFor(t, "everything stored", func() bool { return st.count() == 64 })
	closeWriter(t, w)
	checkInOrder(t, st, "gus@example.com", 64)
}

// stuckSendStream is a stream whose Send, after the first batch, blocks
// until released, as gRPC's does while a slow backend's flow-control
// window is full.
type stuckSendStream struct {
	Stream
	sends   *atomic.Int64
	release chan struct{}
}

func (s stuckSendStream) Send(id uint64, msgs []sdk.ArchivedMessage) error {
	if s.sends.Add(1) > 1 {
		<-s.release
	}
	return s.Stream.Send(id, msgs)
}

// A Send that blocks must not stop the writer: the queue behind it still
// goes to the journal, so Reserve keeps taking messages instead of making
// the users wait for the backend.
func TestABlockedSendStillLetsTheJournalTakeTheQueue(t *testing.T) {
	st := newStore()
	var sends atomic.Int64
	release := make(chan struct{})
	local := LocalStream(st)
	open := func(ctx context.Context) (Stream, error) {
		s, err := local(ctx)
		if err != nil {
			return nil, err
		}
		return stuckSendStream{Stream: s, sends: &sends, release: release}, nil
	}
	w := NewWriter(open, Options{QueueSize: 64, HighWater: 32, BatchSize: 4, MaxInFlight: 4,
		FlushInterval: time.Hour, BlockTimeout: 5 * time.Second,
		Journal: openJournal(t, filepath.Join(t.TempDir(), "s.journal"), 1<<20)}, nil)
	// Ten times the queue: without the journal taking it, Reserve would
	// wait for the stuck Send and then fail with ErrFull.
	const total = 640
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < total; i += 4 {
		if err := w.Append(ctx, msgsOf("hal@example.com", i, 4)...); err != nil {
			t.Fatalf("Append of message %d with a Send blocked: %v", i, err)
		}
	}
	if n := sends.Load(); n > 2 {
		t.Fatalf("%d Sends started while the second was blocked", n)
	}
	// What is not in flight reaches the journal, Send still blocked.
	waitFor(t, "the queue journaled", func() bool { return w.Stats().Journaled >= total-64 })
	close(release)
	waitFor(t, "everything stored", func() bool { return st.count() == total })
	closeWriter(t, w)
	checkInOrder(t, st, "hal@example.com", total)
}

// slowJournal is a journal whose every write takes a while, as an fsync
// does on a busy disk.
type slowJournal struct {
	*journal.Journal
	delay time.Duration
}

func (s slowJournal) Append(records ...[]byte) error {
	time.Sleep(s.delay)
	return s.Journal.Append(records...)
}

// While traffic keeps outrunning the backend, every spill round finds new
// full batches. The journal's batches must still reach the backend between
// rounds: a writer that spills round after round and sends only once the
// queue has nothing left to spill starves a backend that could take most
// of the load, and the journal fills with what it would have stored.
func TestTheBackendDrainsTheJournalWhileTrafficKeepsSpilling(t *testing.T) {
	st := newStore()
	st.delay = 5 * time.Millisecond // a few thousand messages/s: slower than the traffic
	w := NewWriter(LocalStream(st), Options{QueueSize: 256, HighWater: 32, BatchSize: 16, MaxInFlight: 2,
		FlushInterval: time.Millisecond, BlockTimeout: 10 * time.Second,
		Journal: slowJournal{Journal: openJournal(t, filepath.Join(t.TempDir(), "d.journal"), 256<<20), delay: 2 * time.Millisecond}}, nil)
	stop := make(chan struct{})
	produced := make(chan int)
	go func() {
		i := 0
		defer func() { produced <- i }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.Append(context.Background(), msgsOf("ivy@example.com", i, 4)...); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			i += 4
		}
	}()
	waitFor(t, "the traffic to spill", func() bool { return w.Stats().JournalBatches > 0 })
	before := st.count()
	waitFor(t, "the backend to store journaled batches with the traffic still spilling", func() bool {
		return st.count() >= before+200
	})
	close(stop)
	n := <-produced
	closeWriter(t, w)
	checkInOrder(t, st, "ivy@example.com", n)
}
