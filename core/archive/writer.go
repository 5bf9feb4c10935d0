package archive

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

// Stream is one open write stream to an archive backend; *sdk.ArchiveStream
// is one. Send and Recv are called from two goroutines, each from one.
type Stream interface {
	// Send sends a batch under an id that its acknowledgement carries.
	Send(id uint64, msgs []sdk.ArchivedMessage) error
	// Recv returns the next acknowledgement, in the order batches were
	// sent: outcome is nil for a stored batch; err is a broken stream.
	Recv() (id uint64, outcome, err error)
	// CloseSend announces the end of the batches.
	CloseSend() error
}

// Opener opens a stream that lives until ctx ends. It fails at once, with
// an error wrapping sdk.ErrUnavailable, while the backend is down.
type Opener func(ctx context.Context) (Stream, error)

// Options tune a Writer. The zero value of each field picks its default.
type Options struct {
	// BatchSize is the most messages in one batch (default 256); a full
	// batch is sent at once.
	BatchSize int
	// BatchBytes bounds a batch's size on the wire (default 1 MiB; a
	// single message larger than that still goes, alone), well under
	// gRPC's 4 MiB message limit whatever the stanzas' size.
	BatchBytes int
	// FlushInterval is how long a message may wait for its batch to fill
	// (default 10ms).
	FlushInterval time.Duration
	// QueueSize bounds the messages the writer holds: reserved, waiting
	// and in flight (default 16384). It is the writer's whole memory.
	QueueSize int
	// MaxInFlight is how many batches may await their acknowledgement
	// (default 16): the next ones travel while one is being committed,
	// and the plugin commits those that wait together.
	MaxInFlight int
	// BlockTimeout is how long Reserve waits for room in a full queue
	// before it gives up with ErrFull (default 2s).
	BlockTimeout time.Duration
	// AckTimeout is how long a batch may wait for its acknowledgement
	// before the stream is taken for dead and opened again (default 30s).
	AckTimeout time.Duration
	// RetryMin and RetryMax bound the wait between attempts to open a
	// stream (defaults 50ms and 2s).
	RetryMin, RetryMax time.Duration
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.BatchSize, 256)
	def(&o.BatchBytes, 1<<20)
	def(&o.QueueSize, 16384)
	def(&o.MaxInFlight, 16)
	defD(&o.FlushInterval, 10*time.Millisecond)
	defD(&o.BlockTimeout, 2*time.Second)
	defD(&o.AckTimeout, 30*time.Second)
	defD(&o.RetryMin, 50*time.Millisecond)
	defD(&o.RetryMax, 2*time.Second)
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	return o
}

// Errors of Reserve and Append.
var (
	// ErrFull: the queue stayed full for Options.BlockTimeout, because
	// the backend is down or slower than the traffic.
	ErrFull = errors.New("archive: write queue full")
	// ErrClosed: the writer is shutting down.
	ErrClosed = errors.New("archive: writer closed")
)

// Writer writes archived messages to a backend in batches on a stream.
//
// A message is first reserved (Reserve), which blocks while the bounded
// queue is full, then committed (Reservation.Commit), which never blocks;
// between the two the caller does whatever must happen together with the
// archiving, so that a message is archived exactly when it is delivered.
// Batches go out when full or after FlushInterval, several in flight; a
// batch leaves the queue only when the backend has acknowledged it. When
// the stream breaks (the plugin died) the writer opens a new one, with
// backoff, and sends the unacknowledged batches again; the backend's
// idempotence on (Owner, StanzaID) keeps them from being stored twice.
type Writer struct {
	open Opener
	opt  Options
	log  hclog.Logger

	ctx    context.Context // streams live in it; cancelled to abort
	cancel context.CancelFunc
	wake   chan struct{} // pokes run; capacity 1
	done   chan struct{} // closed when run returns

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every progress
	used     int           // reserved + queued + in flight
	reserved int
	queue    deque // committed, not sent; ascending seq
	queuedAt time.Time
	inflight []*batch // sent, not acknowledged; in sending order
	nextSeq  uint64   // seq of the next committed message
	batchID  uint64
	owners   map[string]int // queued + in flight, per owner
	flushTo  uint64         // send partial batches up to this seq now
	backoff  time.Duration
	closing  bool
	stats    Stats
}

type item struct {
	seq uint64
	// alone sends the message in a batch of its own: its batch was
	// refused as invalid and the culprit must be found.
	alone bool
	msg   sdk.ArchivedMessage
}

type batch struct {
	id    uint64
	items []item
	sent  time.Time
}

func (b *batch) messages() []sdk.ArchivedMessage {
	out := make([]sdk.ArchivedMessage, len(b.items))
	for i, it := range b.items {
		out[i] = it.msg
	}
	return out
}

// Stats counts what a writer did.
type Stats struct {
	// Stored is how many messages the backend acknowledged.
	Stored uint64
	// Dropped is how many messages the backend refused as invalid; they
	// are logged and never retried.
	Dropped uint64
	// Batches is how many batches were acknowledged.
	Batches uint64
	// Reconnects is how many times a broken stream was opened again.
	Reconnects uint64
	// Pending is how many messages are queued or in flight now.
	Pending int
}

// NewWriter starts a writer; Close stops it. log may be nil.
func NewWriter(open Opener, opt Options, log hclog.Logger) *Writer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{
		open: open, opt: opt, log: log, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		changed: make(chan struct{}), owners: map[string]int{}, backoff: opt.RetryMin,
		nextSeq: 1,
	}
	go w.run()
	return w
}

// Reservation is room for messages in a writer's queue.
type Reservation struct {
	w    *Writer
	n    int
	done bool
}

// Reserve makes room for n messages. It waits while the queue is full, at
// most BlockTimeout (then ErrFull) or until ctx ends. The caller must
// Commit or Release the reservation.
func (w *Writer) Reserve(ctx context.Context, n int) (*Reservation, error) {
	if n < 0 || n > w.opt.QueueSize {
		return nil, fmt.Errorf("archive: cannot reserve %d messages (queue size %d)", n, w.opt.QueueSize)
	}
	var timeout <-chan time.Time
	w.mu.Lock()
	for {
		if w.closing {
			w.mu.Unlock()
			return nil, ErrClosed
		}
		if w.used+n <= w.opt.QueueSize {
			w.used += n
			w.reserved += n
			w.mu.Unlock()
			return &Reservation{w: w, n: n}, nil
		}
		ch := w.changed
		w.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(w.opt.BlockTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return nil, ErrFull
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		w.mu.Lock()
	}
}

// Append reserves room for msgs and commits them.
func (w *Writer) Append(ctx context.Context, msgs ...sdk.ArchivedMessage) error {
	r, err := w.Reserve(ctx, len(msgs))
	if err != nil {
		return err
	}
	if err := r.Commit(msgs...); err != nil {
		r.Release()
		return err
	}
	return nil
}

// Commit queues msgs, at most as many as were reserved, and gives back the
// rest of the room. It never blocks. A reservation is used once; after an
// error (a message without owner or id) it is still unused.
func (r *Reservation) Commit(msgs ...sdk.ArchivedMessage) error {
	if r.done {
		return errors.New("archive: reservation used twice")
	}
	if len(msgs) > r.n {
		return fmt.Errorf("archive: %d messages committed on a reservation of %d", len(msgs), r.n)
	}
	for _, m := range msgs {
		if m.Owner == "" || m.StanzaID == "" {
			return fmt.Errorf("%w: archived message without owner or stanza id", sdk.ErrInvalid)
		}
	}
	r.done = true
	w := r.w
	w.mu.Lock()
	w.reserved -= r.n
	w.used -= r.n - len(msgs)
	if w.queue.len() == 0 && len(msgs) > 0 {
		w.queuedAt = time.Now()
	}
	for _, m := range msgs {
		w.queue.pushBack(item{seq: w.nextSeq, msg: m})
		w.nextSeq++
		w.owners[m.Owner]++
	}
	if len(msgs) < r.n {
		w.notifyLocked()
	}
	w.mu.Unlock()
	w.poke()
	return nil
}

// Release gives the room back; after Commit it does nothing.
func (r *Reservation) Release() {
	if r.done {
		return
	}
	r.done = true
	w := r.w
	w.mu.Lock()
	w.reserved -= r.n
	w.used -= r.n
	w.notifyLocked()
	w.mu.Unlock()
	w.poke()
}

// Sync waits until every message of owner committed before the call has
// been acknowledged (or dropped), so that a query that follows sees them.
// It returns at once when owner has nothing pending, which is the usual
// case; otherwise it sends the queue without waiting for the batch to fill.
func (w *Writer) Sync(ctx context.Context, owner string) error {
	w.mu.Lock()
	if w.owners[owner] == 0 {
		w.mu.Unlock()
		return nil
	}
	target := w.nextSeq - 1
	w.flushTo = max(w.flushTo, target)
	w.mu.Unlock()
	w.poke()
	w.mu.Lock()
	for {
		if w.minPendingLocked() > target {
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("archive: waiting for pending writes: %w", ctx.Err())
		}
		w.mu.Lock()
	}
}

// minPendingLocked is the smallest seq queued or in flight, or MaxUint64.
func (w *Writer) minPendingLocked() uint64 {
	m := ^uint64(0)
	if w.queue.len() > 0 {
		m = w.queue.at(0).seq
	}
	for _, b := range w.inflight {
		m = min(m, b.items[0].seq)
	}
	return m
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Pending = w.queue.len()
	for _, b := range w.inflight {
		s.Pending += len(b.items)
	}
	return s
}

// Close stops taking reservations, writes everything committed (and
// whatever outstanding reservations commit meanwhile) and waits for the
// acknowledgements. If ctx ends first it gives up and reports how many
// messages were not written.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	w.notifyLocked()
	w.mu.Unlock()
	w.poke()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
	}
	w.cancel()
	<-w.done
	w.mu.Lock()
	lost := w.used
	w.mu.Unlock()
	if lost == 0 {
		return nil
	}
	return fmt.Errorf("archive: %d messages not written at shutdown: %w", lost, ctx.Err())
}

func (w *Writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// notifyLocked wakes everyone waiting for progress.
func (w *Writer) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// conn is one open stream and its receiving goroutine.
type conn struct {
	s      Stream
	cancel context.CancelFunc
	dead   chan struct{}
	once   sync.Once
}

func (c *conn) kill() {
	c.once.Do(func() {
		c.cancel()
		close(c.dead)
	})
}

// run sends batches and keeps a stream open while there is work.
func (w *Writer) run() {
	defer close(w.done)
	var c *conn
	defer func() {
		if c != nil {
			c.kill()
		}
	}()
	var retryAt time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if c != nil {
			select {
			case <-c.dead:
				c = nil
				w.mu.Lock()
				retryAt = time.Now().Add(w.backoff)
				w.backoff = min(w.backoff*2, w.opt.RetryMax)
				w.stats.Reconnects++
				w.mu.Unlock()
			default:
			}
		}
		if w.ctx.Err() != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		finished := w.closing && w.used == 0
		pending := w.queue.len()+len(w.inflight) > 0
		w.mu.Unlock()
		if finished {
			if c != nil {
				// Every batch is acknowledged: end the stream politely.
				c.s.CloseSend()
			}
			return
		}

		if c == nil && pending && !now.Before(retryAt) {
			c = w.connect()
			if c == nil {
				w.mu.Lock()
				retryAt = time.Now().Add(w.backoff)
				w.backoff = min(w.backoff*2, w.opt.RetryMax)
				w.mu.Unlock()
			}
		}
		if c != nil {
			w.sendDue(c, now)
		}

		// Sleep until something changes or a deadline passes.
		var wait time.Duration = time.Hour
		var dead <-chan struct{}
		w.mu.Lock()
		switch {
		case c == nil && pending:
			wait = time.Until(retryAt)
		case c != nil:
			dead = c.dead
			if w.queue.len() > 0 && len(w.inflight) < w.opt.MaxInFlight {
				wait = time.Until(w.queuedAt.Add(w.opt.FlushInterval))
			}
			if len(w.inflight) > 0 {
				wait = min(wait, time.Until(w.inflight[0].sent.Add(w.opt.AckTimeout)))
			}
		}
		w.mu.Unlock()
		if wait <= 0 {
			// A deadline passed: the next round sends the due batch,
			// retries the connection, or drops a stream that stopped
			// acknowledging.
			if c != nil && w.ackOverdue() {
				w.log.Warn("archive backend does not acknowledge; reopening the stream", "timeout", w.opt.AckTimeout.String())
				c.kill()
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-w.wake:
		case <-dead:
		case <-timer.C:
		case <-w.ctx.Done():
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (w *Writer) ackOverdue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inflight) > 0 && time.Since(w.inflight[0].sent) >= w.opt.AckTimeout
}

// connect opens a stream, starts its receiver and resends the batches
// that were in flight on the previous one. nil means try again later.
func (w *Writer) connect() *conn {
	ctx, cancel := context.WithCancel(w.ctx)
	s, err := w.open(ctx)
	if err != nil {
		cancel()
		if w.ctx.Err() == nil {
			w.log.Warn("archive stream cannot be opened; will retry", "error", err)
		}
		return nil
	}
	c := &conn{s: s, cancel: cancel, dead: make(chan struct{})}
	w.mu.Lock()
	resend := append([]*batch(nil), w.inflight...)
	now := time.Now()
	for _, b := range resend {
		b.sent = now
	}
	w.mu.Unlock()
	go w.receive(c)
	if len(resend) > 0 {
		w.log.Info("archive stream reopened; resending unacknowledged batches", "batches", len(resend))
	}
	for _, b := range resend {
		if err := s.Send(b.id, b.messages()); err != nil {
			c.kill()
			return c // run notices it is dead
		}
	}
	return c
}

// sendDue sends the batches that are due: full ones, and partial ones
// whose first message waited FlushInterval, that a Sync asked for, or at
// shutdown.
func (w *Writer) sendDue(c *conn, now time.Time) {
	for {
		w.mu.Lock()
		b := w.takeBatchLocked(now)
		w.mu.Unlock()
		if b == nil {
			return
		}
		if err := c.s.Send(b.id, b.messages()); err != nil {
			c.kill()
			return
		}
	}
}

func (w *Writer) takeBatchLocked(now time.Time) *batch {
	if w.queue.len() == 0 || len(w.inflight) >= w.opt.MaxInFlight {
		return nil
	}
	n := min(w.queue.len(), w.opt.BatchSize)
	due := n == w.opt.BatchSize || w.closing || w.queue.at(0).seq <= w.flushTo ||
		now.Sub(w.queuedAt) >= w.opt.FlushInterval
	if !due {
		return nil
	}
	if w.queue.at(0).alone {
		n = 1
	} else {
		size := messageSize(w.queue.at(0).msg)
		for i := 1; i < n; i++ {
			size += messageSize(w.queue.at(i).msg)
			if w.queue.at(i).alone || size > w.opt.BatchBytes {
				n = i
				break
			}
		}
	}
	w.batchID++
	b := &batch{id: w.batchID, items: w.queue.popFront(n), sent: now}
	w.queuedAt = now
	w.inflight = append(w.inflight, b)
	return b
}

// messageSize estimates a message's size on the wire.
func messageSize(m sdk.ArchivedMessage) int {
	return len(m.Owner) + len(m.StanzaID) + len(m.Peer) + len(m.PeerResource) + len(m.Stanza) + len(m.Body) + 32
}

// receive reads acknowledgements until the stream breaks.
func (w *Writer) receive(c *conn) {
	defer c.kill()
	for {
		id, outcome, err := c.s.Recv()
		if err != nil {
			select {
			case <-c.dead: // we closed it
			default:
				if w.ctx.Err() == nil && w.pendingInFlight() {
					w.log.Warn("archive stream broken; will reopen and resend", "error", err)
				}
			}
			return
		}
		if !w.acked(id, outcome) {
			return
		}
		w.poke()
	}
}

func (w *Writer) pendingInFlight() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inflight) > 0
}

// acked applies one acknowledgement; false means the stream must be
// reopened.
func (w *Writer) acked(id uint64, outcome error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.inflight) == 0 || w.inflight[0].id != id {
		w.log.Error("archive backend acknowledged an unexpected batch; reopening the stream", "batch", id)
		return false
	}
	b := w.inflight[0]
	switch {
	case outcome == nil:
		w.inflight = w.inflight[1:]
		w.finishLocked(b.items)
		w.stats.Stored += uint64(len(b.items))
		w.stats.Batches++
		w.backoff = w.opt.RetryMin
	case errors.Is(outcome, sdk.ErrInvalid) && len(b.items) > 1:
		// Find the culprit: send the batch again one message at a time.
		w.inflight = w.inflight[1:]
		for i := range b.items {
			b.items[i].alone = true
		}
		w.queue.pushFront(b.items)
		w.log.Warn("archive backend refused a batch as invalid; retrying its messages one by one", "messages", len(b.items), "error", outcome)
	case errors.Is(outcome, sdk.ErrInvalid):
		w.inflight = w.inflight[1:]
		w.finishLocked(b.items)
		w.stats.Dropped++
		m := b.items[0].msg
		w.log.Error("archive backend refused a message; it is not archived", "owner", m.Owner, "stanza_id", m.StanzaID, "error", outcome)
	default:
		w.log.Warn("archive backend failed to store a batch; will retry", "error", outcome)
		return false
	}
	w.notifyLocked()
	return true
}

// finishLocked forgets items that are stored or given up.
func (w *Writer) finishLocked(items []item) {
	w.used -= len(items)
	for _, it := range items {
		if n := w.owners[it.msg.Owner] - 1; n > 0 {
			w.owners[it.msg.Owner] = n
		} else {
			delete(w.owners, it.msg.Owner)
		}
	}
}
