// Package sm is the transport-independent part of stream management
// (XEP-0198): the counters of handled stanzas in both directions, the queue
// of stanzas the client has not acknowledged yet, and the table of sessions
// that can be resumed, with the timers of those whose connection is gone.
//
// A State outlives the connection it was enabled on: when TCP drops, the
// session keeps collecting stanzas in the same queue, and a resumed
// connection attaches to it and replays what is unacknowledged.
package sm

import (
	"errors"
	"fmt"
	"sync"
)

// NS is the XEP-0198 namespace (version 3).
const NS = "urn:xmpp:sm:3"

// ErrQueueFull is returned by Push when the unacknowledged queue is at its
// bound: the client stopped acknowledging, or a detached session collected
// more than it may keep.
var ErrQueueFull = errors.New("too many unacknowledged stanzas")

// ErrClosed is returned by Push after Close: the session has ended and what
// it did not deliver was handed over.
var ErrClosed = errors.New("stream management state closed")

// HandledTooHighError is an acknowledgement for more stanzas than were sent
// (XEP-0198 §4 and its handled-count-too-high element).
type HandledTooHighError struct {
	H, Sent uint32
}

func (e *HandledTooHighError) Error() string {
	return fmt.Sprintf("acknowledged h=%d, but only %d stanzas were sent", e.H, e.Sent)
}

// Writer is the live connection of a session: it queues bytes for the
// client. Write must not call back into the State.
type Writer interface {
	Write(b []byte)
}

// requestAck is the <r/> sent every Config.RequestEvery stanzas.
var requestAck = []byte("<r xmlns='" + NS + "'/>")

// State is one session's stream management state.
//
// Outbound stanzas are numbered implicitly: the queue holds the serialized
// stanzas acked+1 … sent, oldest first. XEP-0198 counters are unsigned
// 32-bit and wrap, so all arithmetic is on uint32 and differences are taken
// modulo 2^32.
type State struct {
	mu      sync.Mutex
	in      uint32   // stanzas received from the client and handled
	sent    uint32   // stanzas sent to the client
	acked   uint32   // the client's last h
	queue   [][]byte // unacknowledged stanzas, queue[head:] oldest first
	head    int
	w       Writer // nil while detached
	closed  bool
	max     int
	every   int
	pending int // stanzas since the last <r/>
	// keep, while detached in a cluster, gets a copy of each stanza
	// queued (handover.go).
	keep func(n uint32, b []byte)
}

// NewState returns the state of a session that just enabled stream
// management. max bounds the unacknowledged queue (at least 1); every > 0
// sends an <r/> after that many stanzas without one.
func NewState(max, every int) *State {
	if max < 1 {
		max = 1
	}
	return &State{max: max, every: every}
}

// Attach makes w the session's connection and writes to it every stanza
// still unacknowledged, oldest first, so that a resumed stream replays
// exactly those. Stanzas pushed later follow on w in order.
func (s *State) Attach(w Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w, s.keep = w, nil
	for _, b := range s.queue[s.head:] {
		w.Write(b)
	}
	s.pending = 0
	if s.every > 0 && s.unacked() > 0 {
		w.Write(requestAck)
	}
}

// Detach forgets the connection: stanzas pushed from now on are only kept.
func (s *State) Detach() {
	s.mu.Lock()
	s.w = nil
	s.mu.Unlock()
}

// Push counts b as sent and keeps it until acknowledged; while attached it
// also writes it (and an <r/> when one is due). Keeping and writing happen
// under one lock, so the queue's order is the order on the wire.
func (s *State) Push(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.unacked() >= s.max {
		return ErrQueueFull
	}
	if s.head > 0 && s.head >= len(s.queue)/2 {
		// Compact: without it the backing array grows for ever on a
		// long-lived session whose acks trim from the front.
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.head = 0
	}
	s.queue = append(s.queue, b)
	s.sent++
	if s.keep != nil {
		s.keep(s.sent, b)
	}
	if s.w != nil {
		s.w.Write(b)
		if s.pending++; s.every > 0 && s.pending >= s.every {
			s.pending = 0
			s.w.Write(requestAck)
		}
	}
	return nil
}

func (s *State) unacked() int { return len(s.queue) - s.head }

// Ack takes the client's h and drops the stanzas it acknowledges. An h
// below the last one (modulo 2^32) acknowledges nothing new; one above
// what was sent is an error and changes nothing.
func (s *State) Ack(h uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := h - s.acked // how many new stanzas h acknowledges, mod 2^32
	if n > uint32(s.unacked()) {
		if s.acked-h < 1<<31 {
			// An old, smaller h (a late or repeated <a/>): nothing new.
			return nil
		}
		return &HandledTooHighError{H: h, Sent: s.sent}
	}
	for i := s.head; i < s.head+int(n); i++ {
		s.queue[i] = nil
	}
	s.head += int(n)
	s.acked = h
	if s.head == len(s.queue) {
		s.queue = s.queue[:0]
		s.head = 0
	}
	return nil
}

// Handled counts one stanza received from the client and returns the new
// count.
func (s *State) Handled() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.in++
	return s.in
}

// H is the number of stanzas handled from the client (the h of our <a/>).
func (s *State) H() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.in
}

// Counts returns the outbound counters: stanzas sent, the client's last h,
// and how many are unacknowledged.
func (s *State) Counts() (sent, acked uint32, unacked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, s.acked, s.unacked()
}

// Close ends the state: Push fails from now on, and the stanzas never
// acknowledged are returned, oldest first, for the caller to treat as
// undelivered. A second Close returns nil.
func (s *State) Close() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.w, s.keep = nil, nil
	out := s.queue[s.head:]
	s.queue, s.head = nil, 0
	return out
}
