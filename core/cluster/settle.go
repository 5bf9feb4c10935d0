package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Settling forwards before an acknowledgement. A client using stream
// management (XEP-0198) counts a stanza as the server's once <a h/>
// covers it. A stanza forwarded to another node is published to NATS,
// which the NATS client buffers and writes out on a goroutine of its own:
// a node killed right after writing <a/> could lose a forward still in
// that buffer, while the client believes it delivered. Settle closes that
// window: the c2s server calls it before answering <r/>, and it returns
// once every forward published before the call has reached the NATS
// server (a flush: PING and PONG). Concurrent callers share one flush,
// and a caller with nothing newly published since the last flush pays
// nothing.

// settleTimeout bounds a flush: with NATS unreachable the acknowledgement
// goes out anyway (the forwards are handed back when their leases run
// out, and the session would otherwise stall).
const settleTimeout = 2 * time.Second

type settler struct {
	published atomic.Uint64 // forwards published so far (after the publish returned)
	settled   atomic.Uint64 // forwards known to have reached the NATS server

	mu      sync.Mutex
	running *settleRun // the flush in flight, nil if none
}

// settleRun is one flush, covering the forwards published before it.
type settleRun struct {
	covers uint64
	done   chan struct{}
	err    error
}

// Settle returns once the forwards this node published before the call
// have reached the NATS server, or settleTimeout or ctx ended first.
func (c *Cluster) Settle(ctx context.Context) error {
	s := &c.settle
	want := s.published.Load()
	for s.settled.Load() < want {
		s.mu.Lock()
		if s.settled.Load() >= want {
			s.mu.Unlock()
			break
		}
		run := s.running
		if run == nil {
			run = &settleRun{covers: s.published.Load(), done: make(chan struct{})}
			s.running = run
			s.mu.Unlock()
			c.flushFor(run)
		} else {
			s.mu.Unlock()
		}
		select {
		case <-run.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if run.err != nil {
			return run.err
		}
		// A flush that began before want was published covers less:
		// the loop starts one that covers it.
	}
	return nil
}

// flushFor runs the flush run on its own goroutine: its callers wait for
// it with their contexts.
func (c *Cluster) flushFor(run *settleRun) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		defer cancel()
		run.err = c.nc.FlushWithContext(ctx)
		s := &c.settle
		s.mu.Lock()
		if run.err == nil && run.covers > s.settled.Load() {
			s.settled.Store(run.covers)
		}
		s.running = nil
		s.mu.Unlock()
		close(run.done)
	}()
}
