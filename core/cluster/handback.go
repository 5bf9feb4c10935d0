package cluster

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Forwards taken back from the outbox (outbox.go) are handled as
// undelivered by one goroutine, in the order they were taken. Handling
// one is slow (offline storage is a backend call a stanza), and what
// takes them back must not wait for it:
//   - the heartbeat goroutine, whose reaper takes back everything a dead
//     node never answered for: at a high rate, a lease's worth. Handled
//     in line, that could stop this node's heartbeats for longer than a
//     lease, and the other nodes would take it for dead too;
//   - the NATS handlers of acknowledgements and "no responders", which
//     would leave every other answer waiting.
//
// A sender whose forward found its destination's outbox full (a node cut
// off from NATS) is the exception: it waits until the queue is back under
// the outbox's bound, so that what is taken back cannot pile up faster
// than it is stored. It waits a lease at most: handling a forward may
// route it to another node (the user's other resource), and when that
// outbox is full too, the sender is the handler itself.
//
// Nothing here holds the queue's lock while it handles a forward or runs
// a step, for the same reason.
type handBacks struct {
	mu      sync.Mutex
	changed sync.Cond // a batch came, a forward was handled, or closed
	queue   []backBatch
	bytes   int // the stanzas' size in queue and in the batch being handled
	closed  bool
	running bool   // handleBacks was started
	total   uint64 // forwards handed back since the start
	done    chan struct{}
}

// backBatch is forwards to handle as undelivered, or a step to take once
// the batches before it are handled (then).
type backBatch struct {
	fws  []forward
	then func()
}

func newHandBacks() *handBacks {
	h := &handBacks{done: make(chan struct{})}
	h.changed.L = &h.mu
	return h
}

// handBack takes forwards out of the outbox with take and queues them to
// be handled as undelivered, logging msg and args with their count with
// log. Taking and queueing are one step: the reaper, a "no responders",
// an acknowledgement and a full outbox may each take some of one
// destination's, and they must be handled in the order sent.
func (c *Cluster) handBack(take func() []forward, log func(string, ...any), msg string, args ...any) {
	h := c.backs
	h.mu.Lock()
	lost := slices.DeleteFunc(take(), func(fw forward) bool { return fw.data == nil }) // probes
	if len(lost) == 0 {
		h.mu.Unlock()
		return
	}
	log(msg, append(args, "count", len(lost))...)
	h.total += uint64(len(lost))
	if h.closed {
		// Stopping, the handler gone: in line.
		h.mu.Unlock()
		for _, fw := range lost {
			c.undelivered(fw)
		}
		return
	}
	for _, fw := range lost {
		h.bytes += len(fw.data)
	}
	h.queue = append(h.queue, backBatch{fws: lost})
	h.changed.Broadcast()
	h.mu.Unlock()
}

// afterBacks runs step on the handler's goroutine once every forward
// handed back so far is handled.
func (c *Cluster) afterBacks(step func()) {
	h := c.backs
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		step()
		return
	}
	h.queue = append(h.queue, backBatch{then: step})
	h.changed.Broadcast()
	h.mu.Unlock()
}

// startBacks starts the handler of the queued forwards (handleBacks),
// which runs until closeBacks.
func (c *Cluster) startBacks() {
	c.backs.mu.Lock()
	c.backs.running = true
	c.backs.mu.Unlock()
	go c.handleBacks()
}

func (c *Cluster) handleBacks() {
	h := c.backs
	defer close(h.done)
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		for len(h.queue) == 0 && !h.closed {
			h.changed.Wait()
		}
		if len(h.queue) == 0 {
			return
		}
		batch := h.queue[0]
		h.queue[0] = backBatch{}
		h.queue = h.queue[1:]
		if batch.then != nil {
			h.mu.Unlock()
			batch.then()
			h.mu.Lock()
			continue
		}
		for _, fw := range batch.fws {
			h.mu.Unlock()
			c.undelivered(fw)
			h.mu.Lock()
			h.bytes -= len(fw.data)
			h.changed.Broadcast()
		}
	}
}

// waitBacks waits until the forwards queued to be handled are at most max
// bytes, the queue is closed, or limit has passed.
func (c *Cluster) waitBacks(max int, limit time.Duration) {
	h := c.backs
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bytes <= max || h.closed {
		return
	}
	deadline := time.Now().Add(limit)
	t := time.AfterFunc(limit, func() {
		h.mu.Lock()
		h.changed.Broadcast()
		h.mu.Unlock()
	})
	defer t.Stop()
	for h.bytes > max && !h.closed && time.Now().Before(deadline) {
		h.changed.Wait()
	}
}

// closeBacks lets the handler finish the queue and waits for it, or for
// ctx; later hand-backs are handled in line.
func (c *Cluster) closeBacks(ctx context.Context) {
	h := c.backs
	h.mu.Lock()
	h.closed = true
	h.changed.Broadcast()
	running := h.running
	h.mu.Unlock()
	if !running {
		return
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		h.mu.Lock()
		n := 0
		for _, b := range h.queue {
			n += len(b.fws)
		}
		h.mu.Unlock()
		c.log.Warn("leaving the cluster with forwards handed back and not yet stored", "count", n, "error", ctx.Err())
	}
}
