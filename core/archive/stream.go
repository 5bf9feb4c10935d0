package archive

// The stream side of the writer: one open stream to the backend, its
// sender and its receiver. The writer (writer.go) decides what is sent
// and what an acknowledgement means.

import (
	"context"
	"fmt"
	"sync"

	"github.com/koi-im/koi/sdk"
)

// Stream is one open write stream to an archive backend; *sdk.ArchiveStream
// is one. Send and CloseSend are called from one goroutine, Recv from
// another.
type Stream interface {
	// Send sends a batch under an id that its acknowledgement carries.
	// It keeps nothing of msgs after it returns: the writer reuses it.
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

// conn is one open stream with its sending and receiving goroutines.
// Sending has a goroutine of its own because Send blocks while the
// backend is slower than the traffic (gRPC flow control): run must go on
// moving the queue to the journal meanwhile, or the queue fills and
// Reserve makes the users wait for the backend after all.
type conn struct {
	s      Stream
	cancel context.CancelFunc
	dead   chan struct{}
	once   sync.Once
	// out feeds the sender; its capacity, MaxInFlight, is never reached
	// since only batches in flight are in it. Closing it has the sender
	// end the stream (CloseSend) once it has sent them.
	out  chan *batch
	sent chan struct{} // closed when the sender returns
}

// send hands b to the sender.
func (c *conn) send(b *batch) {
	select {
	case c.out <- b:
	case <-c.dead:
	}
}

// closeSend ends the stream's batches after those handed to the sender,
// and waits for it.
func (c *conn) closeSend() {
	close(c.out)
	select {
	case <-c.sent:
	case <-c.dead:
	}
}

// sender sends the batches handed to it, in order, until the stream
// breaks or out is closed.
func (c *conn) sender() {
	defer close(c.sent)
	// Send keeps no message after it returns: one slice serves every
	// batch.
	var msgs []sdk.ArchivedMessage
	for {
		select {
		case b, ok := <-c.out:
			if !ok {
				c.s.CloseSend()
				return
			}
			msgs = b.messages(msgs[:0])
			err := c.s.Send(b.id, msgs)
			clear(msgs) // let the strings go with the batch
			if err != nil {
				c.kill()
				return
			}
		case <-c.dead:
			return
		}
	}
}

func (c *conn) kill() {
	c.once.Do(func() {
		c.cancel()
		close(c.dead)
	})
}

// connect opens a stream and starts its receiver. nil means try again
// later.
func (w *Writer) connect() *conn {
	ctx, cancel := context.WithCancel(w.ctx)
	w.mu.Lock()
	open := w.open
	w.mu.Unlock()
	s, err := open(ctx)
	if err != nil {
		cancel()
		if w.ctx.Err() == nil {
			w.outage(err)
		}
		return nil
	}
	c := &conn{s: s, cancel: cancel, dead: make(chan struct{}),
		out: make(chan *batch, w.opt.MaxInFlight), sent: make(chan struct{})}
	go c.sender()
	go w.receive(c)
	return c
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
					w.outage(fmt.Errorf("stream broken: %w", err))
				}
			}
			return
		}
		if !w.acked(c, id, outcome) {
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
