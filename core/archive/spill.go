package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/koi-im/koi/core/archive/journal"
	"github.com/koi-im/koi/sdk"
)

// The writer's journal side: where batches go while the backend cannot
// take them, how they come back, and how the outage is reported.

// Journal is where batches wait, durably, while the backend cannot take
// them; *journal.Journal is one. Records come back from Next in the order
// they were appended; Ack releases every record up to a position Next
// returned, and Rewind makes Next start again after the last Ack.
type Journal interface {
	// Append stores records durably (fsynced), all or none, before it
	// returns; an error (full: wrapping journal.ErrFull, or a disk
	// failure) leaves the journal as it was.
	Append(records ...[]byte) error
	Next() (record []byte, end int64, ok bool)
	Ack(end int64) error
	Rewind()
	// Len is the records not acknowledged and their size in bytes.
	Len() (records int, bytes int64)
	Close() error
}

// jrec is a journaled batch waiting to be sent: the seq of its first
// message and how many it holds.
type jrec struct {
	seq uint64
	n   int
}

// journalBatchLocked makes the next journal record a batch in flight;
// nil means there was nothing to send after all.
func (w *Writer) journalBatchLocked(rec []byte, end int64, ok bool, now time.Time) *batch {
	if !ok {
		// The journal found damage and lost records: forget them.
		for _, r := range w.jrecs {
			w.jmsgs -= r.n
		}
		w.jrecs = nil
		return nil
	}
	r := w.jrecs[0]
	w.jrecs = w.jrecs[1:]
	w.batchID++
	b := &batch{id: w.batchID, sent: now, end: end}
	msgs, err := decodeRecord(rec)
	if err != nil {
		w.log.Error("archive journal record cannot be read; its messages are lost", "error", err, "messages", r.n)
		w.jmsgs -= r.n
		b.skip = true
		if len(w.inflight) == 0 {
			w.jAcked = end
			w.poke()
			return b
		}
	}
	b.items = make([]item, len(msgs))
	for i, m := range msgs {
		b.items[i] = item{seq: r.seq + uint64(i), msg: m, alone: len(msgs) == 1}
	}
	w.inflight = append(w.inflight, b)
	return b
}

// spillingLocked tells whether queued batches go to the journal rather
// than to the backend.
func (w *Writer) spillingLocked() bool {
	return w.j != nil && (!w.down.IsZero() || w.jrecords > 0 || w.queue.len() > w.opt.HighWater)
}

// maxSpillBatches bounds the batches one spill round writes to the
// journal with a single write and fsync. The fsync is what a spill costs,
// so grouping is what lets the journal keep up with a backend that is
// slower than the traffic.
const maxSpillBatches = 64

// maxKeptSpillBuffer bounds the encode buffer kept between spill rounds.
const maxKeptSpillBuffer = 8 << 20

// spill moves due batches of the queue to the journal (all of them past
// the high-water mark or at shutdown): one round, up to maxSpillBatches
// records in one write and fsync. A journal too full for them all takes
// the first half, then a quarter, and so on; what it does not take goes
// back to the front of the queue, in order. more tells that batches are
// still due: run sends the journal's batches to the backend before the
// next round, because traffic faster than the backend keeps batches due
// round after round, and spilling them all first would leave the backend
// idle while the journal fills with what it could have stored.
func (w *Writer) spill(now time.Time) (more bool) {
	// No deferred unlock: the journal write below runs unlocked.
	w.mu.Lock()
	if !w.spillingLocked() || now.Before(w.jBlocked) {
		w.mu.Unlock()
		return false
	}
	all := w.spillAllLocked()
	cuts := w.spillCuts[:0]
	for len(cuts) < maxSpillBatches {
		n := w.cutLocked(now, all)
		if n == 0 {
			break
		}
		cuts = append(cuts, w.queue.popFront(n))
		w.queuedAt = now
	}
	if len(cuts) == 0 {
		w.mu.Unlock()
		return false
	}
	w.spillSeq = cuts[0][0].seq
	w.mu.Unlock()

	recs := w.encodeSpill(cuts)
	k := len(recs)
	err := w.j.Append(recs...)
	for err != nil && errors.Is(err, journal.ErrFull) && k > 1 {
		k /= 2
		err = w.j.Append(recs[:k]...)
	}
	if err != nil {
		k = 0
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.spillSeq = 0
	for _, items := range cuts[:k] {
		w.jrecs = append(w.jrecs, jrec{seq: items[0].seq, n: len(items)})
		w.jmsgs += len(items)
		w.used -= len(items)
	}
	w.jrecords += k
	// Back to the front of the queue, last batch first so that they
	// keep their order.
	for i := len(cuts) - 1; i >= k; i-- {
		w.queue.pushFront(cuts[i])
	}
	clear(cuts)
	w.spillCuts = cuts[:0]
	if k > 0 {
		w.notifyLocked()
	}
	if err != nil {
		w.jBlocked = time.Now().Add(w.opt.FlushInterval + 10*time.Millisecond)
		if time.Since(w.jLogged) >= w.opt.OutageLogInterval {
			w.jLogged = time.Now()
			w.log.Error("archive journal takes no more batches; messages wait in memory and are refused when it is full",
				"error", err, "in_memory", w.used)
		}
		return false
	}
	return w.spillingLocked() && w.cutLocked(now, w.spillAllLocked()) > 0
}

// spillAllLocked tells whether every queued batch is due for the journal,
// full or not: past the high-water mark, or at a shutdown that cannot
// reach the backend.
func (w *Writer) spillAllLocked() bool {
	return w.queue.len() > w.opt.HighWater || (w.closing && (w.gaveUp || !w.down.IsZero()))
}

// encodeSpill encodes each batch as a journal record into the writer's
// reused buffer; the records are valid until the next call.
func (w *Writer) encodeSpill(cuts [][]item) [][]byte {
	// Room for the worst case (no field shared) at once: a round can
	// take megabytes, and growing the buffer by doubling would copy them
	// again and again.
	need := 0
	for _, items := range cuts {
		need += 1 + binary.MaxVarintLen64
		for i := range items {
			need += messageSize(items[i].msg) + 8*binary.MaxVarintLen64
		}
	}
	buf := w.spillBuf[:0]
	if cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	ends := w.spillEnds[:0]
	for _, items := range cuts {
		buf = appendRecordHeader(buf, len(items))
		for i := range items {
			var prev *sdk.ArchivedMessage
			if i > 0 {
				prev = &items[i-1].msg
			}
			buf = appendRecordMessage(buf, &items[i].msg, prev)
		}
		ends = append(ends, len(buf))
	}
	recs := w.spillRecs[:0]
	start := 0
	for _, end := range ends {
		recs = append(recs, buf[start:end:end])
		start = end
	}
	if cap(buf) <= maxKeptSpillBuffer {
		w.spillBuf = buf
	}
	w.spillEnds, w.spillRecs = ends, recs
	return recs
}

// applyAcks gives the journal the position the backend acknowledged, and
// learns from it how many records are left.
func (w *Writer) applyAcks() {
	if w.j == nil {
		return
	}
	w.mu.Lock()
	end := w.jAcked
	w.jAcked = 0
	w.mu.Unlock()
	if end == 0 {
		return
	}
	if err := w.j.Ack(end); err != nil {
		w.log.Error("archive journal acknowledgement failed", "error", err)
	}
	records, _ := w.j.Len()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.jrecords = records
	if records == 0 {
		w.jrecs, w.jmsgs = nil, 0
		w.log.Info("archive journal replayed; the backend takes messages directly again")
		w.notifyLocked()
	}
}

// loadJournal counts what a journal holds from before a restart; run
// replays it first.
func (w *Writer) loadJournal() {
	var msgs int
	for {
		rec, _, ok := w.j.Next()
		if !ok {
			break
		}
		ms, err := decodeRecord(rec)
		if err != nil {
			w.log.Error("archive journal record cannot be read; its messages are lost", "error", err)
		}
		w.jrecs = append(w.jrecs, jrec{seq: w.nextSeq, n: len(ms)})
		for _, m := range ms {
			if _, ok := w.owners[m.Owner]; !ok {
				// A copy: the key would otherwise hold on to the
				// whole record, which m.Owner is a piece of.
				m.Owner = strings.Clone(m.Owner)
			}
			w.owners[m.Owner]++
		}
		w.nextSeq += uint64(len(ms)) + 1
		msgs += len(ms)
	}
	w.j.Rewind()
	w.jrecords, _ = w.j.Len()
	w.jmsgs = msgs
	if w.jrecords > 0 {
		w.log.Info("archive journal holds batches from before; replaying them", "batches", w.jrecords, "messages", msgs)
	}
}

// outage notes a failure to reach the backend, and logs it at the first
// failure and then at most once every OutageLogInterval.
func (w *Writer) outage(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outageLocked(err)
}

func (w *Writer) outageLocked(err error) {
	now := time.Now()
	w.downErrs++
	if w.closing {
		w.gaveUp = true
	}
	what := "messages wait in memory"
	if w.j != nil {
		what = "batches go to the journal"
	}
	if w.down.IsZero() {
		w.down, w.downLog, w.downErrs = now, now, 0
		w.log.Warn("archive backend unreachable; "+what, "error", err)
		return
	}
	if now.Sub(w.downLog) < w.opt.OutageLogInterval {
		return
	}
	w.downLog = now
	since := w.down.UTC().Format(time.RFC3339)
	if w.j != nil {
		w.log.Warn(fmt.Sprintf("archive backend unreachable since %s, %d batches (%d messages) journaled", since, w.jrecords, w.jmsgs),
			"in_memory", w.used-w.reserved, "failures", w.downErrs, "error", err)
	} else {
		w.log.Warn(fmt.Sprintf("archive backend unreachable since %s, %d messages waiting in memory", since, w.used-w.reserved),
			"failures", w.downErrs, "error", err)
	}
	w.downErrs = 0
}
