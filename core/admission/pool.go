// Package admission keeps the expensive first steps of new connections
// (TLS handshakes, SASL verification) from starving the sessions that are
// already established.
//
// A reconnect storm is thousands of clients doing public-key operations and
// key derivations at once. Run each in its own goroutine and the scheduler
// shares the CPU among all of them: an established session's message waits
// behind hundreds of handshakes in the run queue. A Pool lets only a few
// such steps run at a time; the rest wait (cheaply, parked) in a bounded
// queue, and whoever waits too long or finds the queue full is turned away
// with a time to retry. Established traffic then competes with a handful of
// runnable goroutines instead of hundreds.
package admission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBusy is returned when the pool cannot admit a caller: the wait queue
// is full or the caller waited longer than the pool's maximum wait.
var ErrBusy = errors.New("admission: server busy")

// Pool is a semaphore with a bounded, time-limited wait queue. The zero
// value is not usable; a nil *Pool admits everyone at once.
type Pool struct {
	// cur is swapped by Resize. A caller releases into the slots it
	// acquired from, so steps admitted before a resize finish under the
	// old size while new callers wait for the new slots: for a moment
	// both may run, never more than the old and new sizes together.
	cur     atomic.Pointer[poolState]
	waiting atomic.Int64

	admitted atomic.Uint64
	refused  atomic.Uint64

	// yield makes each admitted step wait for one turn of the network
	// poller first (see yield.go). Made at the first Acquire: a Pool holds
	// its two descriptors for the life of the process.
	yieldOnce sync.Once
	yielder   *Yielder
}

type poolState struct {
	slots   chan struct{}
	queue   int64
	maxWait time.Duration
}

// New returns a Pool running at most size steps at once, with at most queue
// callers waiting for at most maxWait each. size must be at least 1; a
// queue of 0 refuses whoever finds no free slot; a maxWait of 0 waits as
// long as the caller's context allows.
func New(size, queue int, maxWait time.Duration) (*Pool, error) {
	st, err := newState(size, queue, maxWait)
	if err != nil {
		return nil, err
	}
	p := &Pool{}
	p.cur.Store(st)
	return p, nil
}

func newState(size, queue int, maxWait time.Duration) (*poolState, error) {
	if size < 1 {
		return nil, fmt.Errorf("admission: pool size %d: must be at least 1", size)
	}
	if queue < 0 || maxWait < 0 {
		return nil, fmt.Errorf("admission: queue %d and wait %s must not be negative", queue, maxWait)
	}
	return &poolState{slots: make(chan struct{}, size), queue: int64(queue), maxWait: maxWait}, nil
}

// Check reports whether New would accept these values.
func Check(size, queue int, maxWait time.Duration) error {
	_, err := newState(size, queue, maxWait)
	return err
}

// Resize changes the pool's size, queue and wait (as New checks them).
// Callers already waiting keep waiting for the slots they queued for;
// new callers see the new limits at once.
func (p *Pool) Resize(size, queue int, maxWait time.Duration) error {
	st, err := newState(size, queue, maxWait)
	if err != nil {
		return err
	}
	p.cur.Store(st)
	return nil
}

// Acquire waits for a slot and returns the function that gives it back
// (call it exactly once). It returns ErrBusy when the queue is full or the
// wait exceeds the pool's maximum, and ctx's error (wrapped) when ctx ends
// first. A nil Pool admits at once.
//
// With a slot, the caller still waits for one turn of the network poller
// before it returns (see yield.go): goroutines of established sessions
// whose data came in meanwhile run first, whatever the run queues hold.
func (p *Pool) Acquire(ctx context.Context) (release func(), err error) {
	if p == nil {
		return func() {}, nil
	}
	release, err = p.acquire(ctx)
	if err == nil {
		p.yieldOnce.Do(func() {
			// Without one (no descriptors left) Yield falls back to
			// runtime.Gosched.
			p.yielder, _ = NewYielder()
		})
		p.yielder.Yield()
	}
	return release, err
}

func (p *Pool) acquire(ctx context.Context) (release func(), err error) {
	st := p.cur.Load()
	select {
	case st.slots <- struct{}{}:
		p.admitted.Add(1)
		return st.release, nil
	default:
	}
	if p.waiting.Add(1) > st.queue {
		p.waiting.Add(-1)
		p.refused.Add(1)
		return nil, fmt.Errorf("%w: %d waiting", ErrBusy, st.queue)
	}
	defer p.waiting.Add(-1)
	var expired <-chan time.Time
	if st.maxWait > 0 {
		t := time.NewTimer(st.maxWait)
		defer t.Stop()
		expired = t.C
	}
	select {
	case st.slots <- struct{}{}:
		p.admitted.Add(1)
		return st.release, nil
	case <-expired:
		p.refused.Add(1)
		return nil, fmt.Errorf("%w: waited %s", ErrBusy, st.maxWait)
	case <-ctx.Done():
		return nil, fmt.Errorf("admission: waiting for a slot: %w", ctx.Err())
	}
}

func (st *poolState) release() { <-st.slots }

// RetryAfter is what to tell a refused client: the pool's maximum wait,
// the time in which the queue in front of it turns over at worst, or one
// second when the pool has no maximum.
func (p *Pool) RetryAfter() time.Duration {
	if p == nil {
		return time.Second
	}
	if w := p.cur.Load().maxWait; w > 0 {
		return w
	}
	return time.Second
}

// Stats are a pool's counters since it was made.
type Stats struct {
	Running  int    // steps holding a slot now
	Waiting  int    // callers waiting now
	Admitted uint64 // callers given a slot
	Refused  uint64 // callers turned away (queue full or waited too long)
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	if p == nil {
		return Stats{}
	}
	return Stats{Running: len(p.cur.Load().slots), Waiting: int(p.waiting.Load()), Admitted: p.admitted.Load(), Refused: p.refused.Load()}
}
