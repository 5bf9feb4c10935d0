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

// Errors of Reserve and Append.
var (
	// ErrFull: the queue stayed full for Options.BlockTimeout, because
	// the backend is down or slower than the traffic and the journal, if
	// there is one, is full too.
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
//
// With a Journal, a committed message is always either in memory (queued
// or in flight) or in the fsynced journal. The writer moves batches from
// the queue to the journal while the backend is unreachable (a stream
// that cannot be opened, a failed batch, an acknowledgement that does not
// come), while the journal holds anything (so that messages reach the
// backend in the order they were committed), and when the queue passes
// HighWater. Memory is thus freed as fast as the disk takes batches, and
// Reserve refuses only when the journal is full as well. The journal is
// replayed in order as soon as the backend acknowledges again, and at
// start-up; replays are idempotent like any resend.
type Writer struct {
	open Opener // under mu: Redirect changes it
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
	// redirect asks run to end the current stream once its batches are
	// acknowledged and to open the next with open (see Redirect).
	redirect bool

	// The journal, if any. jrecs, jmsgs and spillSeq are under mu; the
	// journal itself is called from run only.
	j        Journal
	jrecs    []jrec // journaled and not yet sent, oldest first
	jrecords int    // records in the journal not acknowledged
	jmsgs    int    // messages in the journal not acknowledged
	jAcked   int64  // journal position acknowledged, not yet given to Ack
	spillSeq uint64 // first seq of a batch being journaled, or 0
	// jBlocked delays the next journal write after one failed (full).
	jBlocked time.Time
	jLogged  time.Time
	// Scratch of spill, which runs on run's goroutine only: reused so
	// that a busy spill does not allocate per round.
	spillCuts [][]item
	spillBuf  []byte
	spillEnds []int
	spillRecs [][]byte

	down time.Time // since when the backend is unreachable; zero while it answers
	// gaveUp: the backend failed again after Close began, so the journal
	// keeps what is left for the next start.
	gaveUp   bool
	downLog  time.Time // when the outage was last logged
	downErrs int       // failures since then
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
	// end is the journal position after the batch's record, 0 for a
	// batch from memory.
	end int64
	// skip is a journal record that cannot be decoded: never sent, it is
	// acknowledged when its turn comes.
	skip bool
}

// messages appends the batch's messages to out.
func (b *batch) messages(out []sdk.ArchivedMessage) []sdk.ArchivedMessage {
	for _, it := range b.items {
		out = append(out, it.msg)
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
	// Journaled is how many messages wait in the journal, in
	// JournalBatches records.
	Journaled, JournalBatches int
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
		nextSeq: 1, j: opt.Journal,
	}
	if w.j != nil {
		w.loadJournal()
	}
	go w.run()
	return w
}

// Reservation is room for messages in a writer's queue. It is a value, so
// that reserving allocates nothing; it is used through a pointer (Commit,
// Release) and must not be copied once made.
type Reservation struct {
	w    *Writer
	n    int
	done bool
}

// Reserve makes room for n messages. It waits while the queue is full, at
// most BlockTimeout (then ErrFull) or until ctx ends. The caller must
// Commit or Release the reservation.
func (w *Writer) Reserve(ctx context.Context, n int) (Reservation, error) {
	if n < 0 || n > w.opt.QueueSize {
		return Reservation{}, fmt.Errorf("archive: cannot reserve %d messages (queue size %d)", n, w.opt.QueueSize)
	}
	var timeout <-chan time.Time
	w.mu.Lock()
	for {
		if w.closing {
			w.mu.Unlock()
			return Reservation{}, ErrClosed
		}
		if w.used+n <= w.opt.QueueSize {
			w.used += n
			w.reserved += n
			w.mu.Unlock()
			return Reservation{w: w, n: n}, nil
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
			return Reservation{}, ErrFull
		case <-ctx.Done():
			return Reservation{}, ctx.Err()
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
	before := w.queue.len()
	if before == 0 && len(msgs) > 0 {
		w.queuedAt = time.Now()
	}
	for i := range msgs {
		w.queue.pushBack(item{seq: w.nextSeq, msg: msgs[i]})
		w.nextSeq++
		w.owners[msgs[i].Owner]++
	}
	wake := w.commitWakesLocked(before, w.queue.len())
	if len(msgs) < r.n {
		w.notifyLocked()
		wake = true
	}
	w.mu.Unlock()
	if wake {
		w.poke()
	}
	return nil
}

// commitWakesLocked tells whether a commit that took the queue from
// before to after messages gives run something to do now. Waking run for
// every message would cost a goroutine switch per message for nothing: it
// would find the batch not yet due and sleep again until the deadline it
// already had.
func (w *Writer) commitWakesLocked(before, after int) bool {
	b := w.opt.BatchSize
	return before == 0 || // the flush deadline starts now
		after/b != before/b || // a full batch is due
		(w.j != nil && before <= w.opt.HighWater && after > w.opt.HighWater) || // the queue spills
		w.closing
}

// Release gives the room back; after Commit, or on the zero Reservation,
// it does nothing.
func (r *Reservation) Release() {
	if r.done || r.w == nil {
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
		if len(b.items) > 0 {
			m = min(m, b.items[0].seq)
		}
	}
	if len(w.jrecs) > 0 {
		m = min(m, w.jrecs[0].seq)
	}
	if w.spillSeq != 0 {
		m = min(m, w.spillSeq)
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
	s.Journaled, s.JournalBatches = w.jmsgs, w.jrecords
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
	case <-ctx.Done():
		w.cancel()
		<-w.done
	}
	w.mu.Lock()
	lost, journaled := w.used, w.jmsgs
	w.mu.Unlock()
	if w.j != nil {
		if err := w.j.Close(); err != nil {
			w.log.Error("archive journal not closed cleanly", "error", err)
		}
		if journaled > 0 {
			w.log.Info("archive messages left in the journal for the next start", "messages", journaled)
		}
	}
	if lost == 0 {
		return nil
	}
	return fmt.Errorf("archive: %d messages not written at shutdown: %w", lost, ctx.Err())
}

// Redirect makes the writer send to another backend (a configuration
// reload switched the host's archive): the batches in flight on the
// current stream are acknowledged there, then that stream ends and the
// next opens with open. What is queued or journaled meanwhile goes to the
// new backend, as it would after a restart.
func (w *Writer) Redirect(open Opener) {
	w.mu.Lock()
	w.open = open
	w.redirect = true
	w.mu.Unlock()
	w.poke()
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
				w.requeue()
				w.mu.Lock()
				retryAt = time.Now().Add(w.backoff)
				w.backoff = min(w.backoff*2, w.opt.RetryMax)
				w.stats.Reconnects++
				w.mu.Unlock()
			default:
			}
		}
		if w.ctx.Err() != nil {
			w.stopping(c)
			return
		}
		w.applyAcks()
		now := time.Now()
		w.mu.Lock()
		if w.redirect && (c == nil || len(w.inflight) == 0) {
			w.redirect = false
			if c != nil {
				w.mu.Unlock()
				c.closeSend()
				c.kill()
				c = nil
				w.mu.Lock()
			}
		}
		finished := w.closing && w.used == 0 && (w.jrecords == 0 || w.gaveUp)
		pending := w.queue.len()+len(w.inflight)+w.jrecords > 0
		w.mu.Unlock()
		if finished {
			if c != nil {
				// Every batch is acknowledged or journaled: end the
				// stream politely.
				c.closeSend()
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
		more := false
		if w.j != nil {
			more = w.spill(now)
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
			if w.queue.len() > 0 && w.jrecords == 0 && len(w.inflight) < w.opt.MaxInFlight && !w.memWindowFullLocked() {
				wait = time.Until(w.queuedAt.Add(w.opt.FlushInterval))
			}
			if len(w.inflight) > 0 {
				wait = min(wait, time.Until(w.inflight[0].sent.Add(w.opt.AckTimeout)))
			}
		}
		if w.spillingLocked() && w.queue.len() > 0 {
			wait = min(wait, max(time.Until(w.queuedAt.Add(w.opt.FlushInterval)), time.Until(w.jBlocked)))
		}
		w.mu.Unlock()
		if more {
			wait = 0
		}
		if wait <= 0 {
			// A deadline passed, or batches are still due for the
			// journal: the next round spills or sends the due batch,
			// retries the connection, or drops a stream that stopped
			// acknowledging.
			if c != nil && w.ackOverdue() {
				w.outage(fmt.Errorf("no acknowledgement within %s", w.opt.AckTimeout))
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

// stopping runs when Close gave up waiting: with a journal, whatever is
// still in memory goes there rather than being lost.
func (w *Writer) stopping(c *conn) {
	if w.j == nil {
		return
	}
	if c != nil {
		c.kill()
	}
	w.applyAcks()
	w.requeue()
	w.mu.Lock()
	w.closing, w.gaveUp = true, true
	w.jBlocked = time.Time{}
	w.mu.Unlock()
	for w.spill(time.Now()) {
	}
}

// requeue takes back the batches in flight on a stream that died: those
// from memory return to the front of the queue, those from the journal
// are read from it again.
func (w *Writer) requeue() {
	w.applyAcks()
	w.mu.Lock()
	defer w.mu.Unlock()
	var mem []item
	var back []jrec
	for _, b := range w.inflight {
		switch {
		case b.skip:
			back = append(back, jrec{seq: w.nextSeq, n: 0})
		case b.end > 0:
			back = append(back, jrec{seq: b.items[0].seq, n: len(b.items)})
		default:
			mem = append(mem, b.items...)
		}
	}
	w.inflight = nil
	if len(mem) > 0 {
		if w.queue.len() == 0 {
			w.queuedAt = time.Now()
		}
		w.queue.pushFront(mem)
	}
	if len(back) > 0 {
		w.jrecs = append(back, w.jrecs...)
		w.j.Rewind()
	}
}

func (w *Writer) ackOverdue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inflight) > 0 && time.Since(w.inflight[0].sent) >= w.opt.AckTimeout
}

// sendDue sends the batches that are due: first the journal's, in order;
// from memory only when the journal is empty: full batches, and partial
// ones whose first message waited FlushInterval, that a Sync asked for,
// or at shutdown.
func (w *Writer) sendDue(c *conn, now time.Time) {
	for {
		w.mu.Lock()
		if len(w.inflight) >= w.opt.MaxInFlight || w.redirect {
			w.mu.Unlock()
			return
		}
		var b *batch
		switch {
		case len(w.jrecs) > 0:
			w.mu.Unlock()
			rec, end, ok := w.j.Next()
			w.mu.Lock()
			b = w.journalBatchLocked(rec, end, ok, now)
			if b == nil {
				w.mu.Unlock()
				continue
			}
		case w.jrecords == 0:
			b = w.takeBatchLocked(now)
		}
		w.mu.Unlock()
		if b == nil {
			return
		}
		if b.skip {
			continue
		}
		c.send(b)
	}
}

func (w *Writer) takeBatchLocked(now time.Time) *batch {
	if len(w.inflight) >= w.opt.MaxInFlight || w.memWindowFullLocked() {
		return nil
	}
	n := w.cutLocked(now, false)
	if n == 0 {
		return nil
	}
	w.batchID++
	b := &batch{id: w.batchID, items: w.queue.popFront(n), sent: now}
	w.queuedAt = now
	w.inflight = append(w.inflight, b)
	return b
}

// memWindowFullLocked tells whether the batches in flight from memory
// hold so many messages that the queue could no longer pass its
// high-water mark (QueueSize-HighWater, less a batch). With a journal
// they stop there, so that a backend slower than the traffic lets the
// queue pass the mark and the journal take the rest (fsynced) instead of
// keeping every message in memory in flight: a large MaxInFlight then
// serves the journal's replay, whose batches the plugin stores together
// in large groups. Without a journal there is no mark to reach; one batch
// may always go.
func (w *Writer) memWindowFullLocked() bool {
	if w.j == nil {
		return false
	}
	mem := w.used - w.reserved - w.queue.len()
	return mem > 0 && mem >= w.opt.QueueSize-w.opt.HighWater-w.opt.BatchSize
}

// cutLocked is how many messages from the front of the queue make the
// next batch, 0 when none is due yet; all makes any batch due.
func (w *Writer) cutLocked(now time.Time, all bool) int {
	if w.queue.len() == 0 {
		return 0
	}
	n := min(w.queue.len(), w.opt.BatchSize)
	due := all || n == w.opt.BatchSize || w.closing || w.queue.at(0).seq <= w.flushTo ||
		now.Sub(w.queuedAt) >= w.opt.FlushInterval
	if !due {
		return 0
	}
	if w.queue.at(0).alone {
		return 1
	}
	size := messageSize(w.queue.at(0).msg)
	for i := 1; i < n; i++ {
		size += messageSize(w.queue.at(i).msg)
		if w.queue.at(i).alone || size > w.opt.BatchBytes {
			return i
		}
	}
	return n
}

// messageSize estimates a message's size on the wire.
func messageSize(m sdk.ArchivedMessage) int {
	return len(m.Owner) + len(m.StanzaID) + len(m.Peer) + len(m.PeerResource) + len(m.Stanza) + len(m.Body) + 32
}

// acked applies one acknowledgement; false means the stream must be
// reopened.
func (w *Writer) acked(c *conn, id uint64, outcome error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-c.dead:
		// Its batches are back in the queue or the journal.
		return false
	default:
	}
	if len(w.inflight) == 0 || w.inflight[0].id != id {
		w.log.Error("archive backend acknowledged an unexpected batch; reopening the stream", "batch", id)
		return false
	}
	b := w.inflight[0]
	switch {
	case outcome == nil:
		w.inflight = w.inflight[1:]
		w.finishLocked(b)
		w.stats.Stored += uint64(len(b.items))
		w.stats.Batches++
		w.backoff = w.opt.RetryMin
		if !w.down.IsZero() {
			w.log.Info("archive backend reachable again", "down_for", time.Since(w.down).Round(time.Millisecond).String(),
				"journaled_batches", w.jrecords, "journaled_messages", w.jmsgs)
			w.down = time.Time{}
		}
	case errors.Is(outcome, sdk.ErrInvalid) && len(b.items) > 1:
		// Find the culprit: send the batch again one message at a time.
		w.inflight = w.inflight[1:]
		items := b.items
		if b.end > 0 {
			// Out of the journal and back in memory.
			w.used += len(items)
			w.finishLocked(&batch{end: b.end})
			w.jmsgs -= len(items)
		}
		for i := range items {
			items[i].alone = true
		}
		w.queue.pushFront(items)
		w.log.Warn("archive backend refused a batch as invalid; retrying its messages one by one", "messages", len(items), "error", outcome)
	case errors.Is(outcome, sdk.ErrInvalid):
		w.inflight = w.inflight[1:]
		w.finishLocked(b)
		w.stats.Dropped++
		m := b.items[0].msg
		w.log.Error("archive backend refused a message; it is not archived", "owner", m.Owner, "stanza_id", m.StanzaID, "error", outcome)
	default:
		w.outageLocked(fmt.Errorf("storing a batch: %w", outcome))
		return false
	}
	// Undecodable journal records next in line count as done.
	for len(w.inflight) > 0 && w.inflight[0].skip {
		w.jAcked = w.inflight[0].end
		w.inflight = w.inflight[1:]
	}
	w.notifyLocked()
	return true
}

// finishLocked forgets a batch that is stored or given up.
func (w *Writer) finishLocked(b *batch) {
	if b.end > 0 {
		w.jAcked = b.end
		w.jmsgs -= len(b.items)
	} else {
		w.used -= len(b.items)
	}
	for _, it := range b.items {
		if n := w.owners[it.msg.Owner] - 1; n > 0 {
			w.owners[it.msg.Owner] = n
		} else {
			delete(w.owners, it.msg.Owner)
		}
	}
}
