package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// store is the storage under the writer in these tests: a map with the
// idempotence the sdk contract asks for, and knobs to make it fail the way
// a database or a plugin does. The real backends are tested against the
// same contract by sdk/sdktest; these tests are about the writer.
type store struct {
	mu      sync.Mutex
	msgs    map[string]sdk.ArchivedMessage // owner/id -> message
	batches []int                          // sizes of the AppendArchive calls
	appends int                            // messages offered, duplicates included
	order   []string                       // owner/id in the order first stored
	failN   int                            // fail the next failN calls with ErrUnavailable
	delay   time.Duration                  // each call takes this long
}

func newStore() *store { return &store{msgs: map[string]sdk.ArchivedMessage{}} }

func (s *store) AppendArchive(ctx context.Context, msgs []sdk.ArchivedMessage) error {
	// Like a database commit, a call in progress finishes even if the
	// stream that asked for it is gone: stored, never acknowledged.
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return fmt.Errorf("database is restarting: %w", sdk.ErrUnavailable)
	}
	for _, m := range msgs {
		if m.Body == "invalid" {
			return fmt.Errorf("%w: body says so", sdk.ErrInvalid)
		}
	}
	s.batches = append(s.batches, len(msgs))
	for _, m := range msgs {
		s.appends++
		k := m.Owner + "/" + m.StanzaID
		if _, dup := s.msgs[k]; !dup {
			s.msgs[k] = m
			s.order = append(s.order, k)
		}
	}
	return nil
}

func (s *store) QueryArchive(context.Context, sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	return sdk.ArchivePage{}, errors.ErrUnsupported
}
func (s *store) DeleteArchive(context.Context, string) error { return errors.ErrUnsupported }
func (s *store) GetArchivePrefs(context.Context, string) (sdk.ArchivePrefs, error) {
	return sdk.ArchivePrefs{}, errors.ErrUnsupported
}
func (s *store) SetArchivePrefs(context.Context, string, sdk.ArchivePrefs) error {
	return errors.ErrUnsupported
}

func (s *store) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *store) has(owner, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.msgs[owner+"/"+id]
	return ok
}

// gate is an Opener in front of LocalStream that can refuse to open (the
// plugin is down) and break open streams (the plugin died).
type gate struct {
	st     *store
	mu     sync.Mutex
	down   bool
	opens  int
	open   []Stream
	breakN atomic.Int64 // break the stream after it received this many more batches
}

func (g *gate) opener(ctx context.Context) (Stream, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down {
		return nil, fmt.Errorf("plugin is down: %w", sdk.ErrUnavailable)
	}
	ctx, cancel := context.WithCancel(ctx)
	s, err := LocalStream(g.st)(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	g.opens++
	bs := &breakable{Stream: s, g: g, cancel: cancel}
	g.open = append(g.open, bs)
	return bs, nil
}

func (g *gate) setDown(down bool) {
	g.mu.Lock()
	g.down = down
	open := g.open
	g.open = nil
	g.mu.Unlock()
	if down {
		for _, s := range open {
			s.(*breakable).cancel()
		}
	}
}

func (g *gate) opened() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.opens
}

type breakable struct {
	Stream
	g      *gate
	cancel context.CancelFunc
}

func (b *breakable) Send(id uint64, msgs []sdk.ArchivedMessage) error {
	err := b.Stream.Send(id, msgs)
	if n := b.g.breakN.Add(-1); n == 0 {
		// The batch reached the backend, which may store it, but the
		// acknowledgement never comes back.
		time.Sleep(5 * time.Millisecond)
		b.cancel()
	}
	return err
}

func msg(owner string, i int) sdk.ArchivedMessage {
	return sdk.ArchivedMessage{
		Owner: owner, StanzaID: fmt.Sprintf("id%06d", i), Peer: "peer@example.com",
		Stamp: time.Now().UTC(), Stanza: "<message/>", Body: fmt.Sprint("hello ", i),
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func closeWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestFullBatchesGoAtOnceAndTheRestAfterTheInterval(t *testing.T) {
	st := newStore()
	w := NewWriter(LocalStream(st), Options{BatchSize: 10, FlushInterval: 200 * time.Millisecond}, nil)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < 25; i++ {
		if err := w.Append(ctx, msg("alice@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two full batches", func() bool { return st.count() == 20 })
	if time.Since(start) > 150*time.Millisecond {
		t.Errorf("full batches took %v: they should not wait for the interval", time.Since(start))
	}
	waitFor(t, "the partial batch", func() bool { return st.count() == 25 })
	if time.Since(start) < 200*time.Millisecond {
		t.Errorf("the partial batch went after %v, before the flush interval", time.Since(start))
	}
	st.mu.Lock()
	sizes := fmt.Sprint(st.batches)
	st.mu.Unlock()
	if sizes != "[10 10 5]" {
		t.Errorf("batch sizes %s, want [10 10 5]", sizes)
	}
	closeWriter(t, w)
	if s := w.Stats(); s.Stored != 25 || s.Batches != 3 || s.Pending != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestSyncFlushesOnlyWhenTheOwnerHasPendingMessages(t *testing.T) {
	st := newStore()
	w := NewWriter(LocalStream(st), Options{BatchSize: 100, FlushInterval: time.Hour}, nil)
	defer closeWriter(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Append(ctx, msg("alice@example.com", 1), msg("bob@example.com", 2)); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx, "carol@example.com"); err != nil {
		t.Fatal(err)
	}
	if st.count() != 0 {
		t.Fatal("Sync for an owner without pending messages flushed")
	}
	if err := w.Sync(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if !st.has("alice@example.com", "id000001") {
		t.Fatal("after Sync the owner's message is not stored")
	}
}

func TestBackpressureWhenTheBackendIsDown(t *testing.T) {
	st := newStore()
	g := &gate{st: st}
	g.setDown(true)
	w := NewWriter(g.opener, Options{QueueSize: 5, BatchSize: 2, FlushInterval: time.Millisecond,
		BlockTimeout: 100 * time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}, nil)
	defer closeWriter(t, w)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := w.Append(ctx, msg("alice@example.com", i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	start := time.Now()
	if err := w.Append(ctx, msg("alice@example.com", 5)); !errors.Is(err, ErrFull) {
		t.Fatalf("append to a full queue: %v, want ErrFull", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > time.Second {
		t.Errorf("a full queue refused after %v, want about the block timeout", d)
	}
	// A sender blocked on a full queue goes on when the backend is back.
	errc := make(chan error, 1)
	go func() { errc <- w.Append(ctx, msg("alice@example.com", 6)) }()
	time.Sleep(20 * time.Millisecond)
	g.setDown(false)
	if err := <-errc; err != nil {
		t.Fatalf("blocked append after recovery: %v", err)
	}
	waitFor(t, "everything stored", func() bool { return st.count() == 6 })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if r, err := w.Reserve(cctx, 1); err == nil {
		r.Release() // there was room: no need to wait
	} else {
		t.Errorf("Reserve with room and a cancelled context: %v", err)
	}
	if _, err := w.Reserve(ctx, 6); err == nil {
		t.Error("a reservation larger than the queue was granted")
	}
}

func TestBrokenStreamsAreReopenedAndBatchesResentExactlyOnce(t *testing.T) {
	st := newStore()
	st.delay = 2 * time.Millisecond
	g := &gate{st: st}
	w := NewWriter(g.opener, Options{BatchSize: 7, MaxInFlight: 4, FlushInterval: time.Millisecond,
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}, nil)
	ctx := context.Background()
	const n = 500
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Break the stream again and again while batches are in flight.
		for i := 0; i < 5; i++ {
			g.breakN.Store(3)
			time.Sleep(15 * time.Millisecond)
		}
	}()
	for i := 0; i < n; i++ {
		if err := w.Append(ctx, msg(fmt.Sprintf("u%d@example.com", i%7), i)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(3 * time.Millisecond)
		}
	}
	<-done
	closeWriter(t, w)
	if st.count() != n {
		t.Fatalf("%d messages stored, want %d", st.count(), n)
	}
	for i := 0; i < n; i++ {
		if !st.has(fmt.Sprintf("u%d@example.com", i%7), fmt.Sprintf("id%06d", i)) {
			t.Fatalf("message %d missing", i)
		}
	}
	s := w.Stats()
	if s.Reconnects == 0 || g.opened() < 2 {
		t.Errorf("the stream was never reopened (stats %+v, opens %d): the test did not test", s, g.opened())
	}
	if s.Stored != n {
		t.Errorf("stats count %d stored, want %d", s.Stored, n)
	}
	st.mu.Lock()
	resent := st.appends - n
	st.mu.Unlock()
	t.Logf("%d reconnects, %d messages resent and deduplicated by the backend", s.Reconnects, resent)
}

func TestTransientFailuresAreRetried(t *testing.T) {
	st := newStore()
	st.failN = 3
	w := NewWriter(LocalStream(st), Options{BatchSize: 4, FlushInterval: time.Millisecond, RetryMin: time.Millisecond}, nil)
	for i := 0; i < 10; i++ {
		if err := w.Append(context.Background(), msg("alice@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	closeWriter(t, w)
	if st.count() != 10 {
		t.Fatalf("%d stored, want 10", st.count())
	}
}

func TestAnInvalidMessageIsDroppedAlone(t *testing.T) {
	st := newStore()
	w := NewWriter(LocalStream(st), Options{BatchSize: 5, FlushInterval: time.Millisecond}, nil)
	var msgs []sdk.ArchivedMessage
	for i := 0; i < 5; i++ {
		m := msg("alice@example.com", i)
		if i == 2 {
			m.Body = "invalid"
		}
		msgs = append(msgs, m)
	}
	if err := w.Append(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
	if st.count() != 4 || st.has("alice@example.com", "id000002") {
		t.Fatalf("stored %d, want the 4 valid ones", st.count())
	}
	if s := w.Stats(); s.Dropped != 1 || s.Stored != 4 {
		t.Errorf("stats %+v, want 1 dropped and 4 stored", s)
	}
}

func TestReservations(t *testing.T) {
	st := newStore()
	w := NewWriter(LocalStream(st), Options{QueueSize: 3, BlockTimeout: 20 * time.Millisecond, FlushInterval: time.Hour}, nil)
	ctx := context.Background()
	r, err := w.Reserve(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Reserve(ctx, 1); !errors.Is(err, ErrFull) {
		t.Fatalf("reserve beyond the queue: %v", err)
	}
	if err := r.Commit(msg("a@example.com", 1), msg("a@example.com", 2), msg("a@example.com", 3), msg("a@example.com", 4)); err == nil {
		t.Fatal("committing more than reserved worked")
	}
	if err := r.Commit(msg("a@example.com", 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(msg("a@example.com", 2)); err == nil {
		t.Fatal("a reservation was used twice")
	}
	r.Release() // after Commit: nothing happens
	// Two slots came back with the partial commit.
	r2, err := w.Reserve(ctx, 2)
	if err != nil {
		t.Fatalf("room given back by a partial commit is not free: %v", err)
	}
	r2.Release()
	if err := w.Append(ctx, sdk.ArchivedMessage{Owner: "a@example.com"}); !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("a message without id: %v", err)
	}
	closeWriter(t, w)
	if st.count() != 1 {
		t.Fatalf("stored %d, want 1", st.count())
	}
	if _, err := w.Reserve(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("reserve after close: %v", err)
	}
}

func TestCloseGivesUpWhenTheBackendStaysDown(t *testing.T) {
	st := newStore()
	g := &gate{st: st}
	g.setDown(true)
	w := NewWriter(g.opener, Options{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}, nil)
	if err := w.Append(context.Background(), msg("a@example.com", 1), msg("a@example.com", 2)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "2 messages not written") {
		t.Fatalf("Close = %v, want it to report 2 lost messages", err)
	}
}

func TestCloseWaitsForOutstandingReservations(t *testing.T) {
	st := newStore()
	w := NewWriter(LocalStream(st), Options{FlushInterval: time.Hour}, nil)
	r, err := w.Reserve(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- w.Close(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-closed:
		t.Fatalf("Close returned with a reservation outstanding: %v", err)
	default:
	}
	if err := r.Commit(msg("a@example.com", 1)); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if st.count() != 1 {
		t.Fatal("the message committed during Close is not stored")
	}
}

func TestBatchesStayUnderTheByteLimit(t *testing.T) {
	st := newStore()
	w := NewWriter(LocalStream(st), Options{BatchSize: 100, BatchBytes: 10_000, FlushInterval: time.Millisecond}, nil)
	big := strings.Repeat("x", 3000)
	var msgs []sdk.ArchivedMessage
	for i := range 10 {
		m := msg("alice@example.com", i)
		m.Stanza = big
		if i == 5 {
			m.Stanza = strings.Repeat("y", 50_000) // larger than a batch: goes alone
		}
		msgs = append(msgs, m)
	}
	if err := w.Append(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
	st.mu.Lock()
	sizes := fmt.Sprint(st.batches)
	st.mu.Unlock()
	if st.count() != 10 || sizes != "[3 2 1 3 1]" {
		t.Fatalf("stored %d in batches %s, want 10 in [3 2 1 3 1]", st.count(), sizes)
	}
}

func TestDeque(t *testing.T) {
	var d deque
	next := uint64(0)
	var want []uint64
	check := func() {
		t.Helper()
		if d.len() != len(want) {
			t.Fatalf("len %d, want %d", d.len(), len(want))
		}
		for i, w := range want {
			if d.at(i).seq != w {
				t.Fatalf("item %d is %d, want %d", i, d.at(i).seq, w)
			}
		}
	}
	// Wrap around and grow several times, with pops and front pushes in
	// between.
	for round := range 50 {
		for range round%7 + 30 {
			d.pushBack(item{seq: next})
			want = append(want, next)
			next++
		}
		n := min(d.len(), round%5+20)
		got := d.popFront(n)
		for i, it := range got {
			if it.seq != want[i] {
				t.Fatalf("popped %d, want %d", it.seq, want[i])
			}
		}
		want = want[n:]
		if round%3 == 0 {
			back := got[len(got)-3:]
			d.pushFront(back)
			want = append([]uint64{back[0].seq, back[1].seq, back[2].seq}, want...)
		}
		check()
	}
	d.popFront(d.len())
	want = nil
	check()
}

// TestRedirect: after Redirect, the batches in flight finish on the old
// backend and everything after goes to the new one, without a reconnect
// counted as an outage; messages appended concurrently are all stored
// exactly once, in one backend or the other.
func TestRedirect(t *testing.T) {
	a, b := &gate{st: newStore()}, &gate{st: newStore()}
	w := NewWriter(a.opener, Options{BatchSize: 5, FlushInterval: time.Millisecond}, nil)
	ctx := context.Background()
	for i := range 20 {
		if err := w.Append(ctx, msg("alice@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the first messages in A", func() bool { return a.st.count() == 20 })
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 20; i < 220; i++ {
			if err := w.Append(ctx, msg("alice@example.com", i)); err != nil {
				t.Error(err)
			}
		}
	})
	time.Sleep(time.Millisecond)
	w.Redirect(b.opener)
	wg.Wait()
	waitFor(t, "all 220 stored", func() bool { return a.st.count()+b.st.count() == 220 })
	for i := range 220 {
		id := fmt.Sprintf("id%06d", i)
		if a.st.has("alice@example.com", id) == b.st.has("alice@example.com", id) {
			t.Fatalf("message %d stored in both or neither", i)
		}
	}
	if err := w.Append(ctx, msg("alice@example.com", 999)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a message after the redirect in B", func() bool { return b.st.has("alice@example.com", "id000999") })
	if b.opened() != 1 || w.Stats().Reconnects != 0 {
		t.Errorf("B opened %d times, %d reconnects", b.opened(), w.Stats().Reconnects)
	}
	closeWriter(t, w)
}
