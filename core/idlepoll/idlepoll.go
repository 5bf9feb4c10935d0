// Package idlepoll waits for many idle sockets with one goroutine.
//
// Go's own poller needs a goroutine parked per socket it waits for, and a
// parked goroutine keeps its stack: at 15,000 idle client sessions that is
// most of what a session costs. A Poller keeps a second epoll instance
// (beside the runtime's, which keeps the socket too) in which a socket is
// armed once (EPOLLONESHOT): when it becomes readable, or when the peer
// goes, the Poller calls its Waker, which starts a goroutine to read it.
// Between the two nothing waits for the socket but the kernel.
//
// Each wait has a Token. Exactly one of the Poller (the socket became
// ready) and a Cancel (the owner wants the session back for another
// reason: a close, a timeout) gets the token's waker, so a session is
// resumed once, whichever comes first.
package idlepoll

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
)

// Waker is told that the socket it waits for is ready. It is called on
// the Poller's goroutine and must not block (start a goroutine).
type Waker interface{ Wake() }

// Token names one wait. Tokens are never reused, so a stale one (of a
// wait that already ended) cancels nothing.
type Token uint64

// ErrUnsupported is returned by New where there is no epoll.
var ErrUnsupported = errors.New("idlepoll: not supported on this system")

// Poller waits for armed sockets. Its zero value is not usable: call New.
type Poller struct {
	sys     sysPoller
	next    atomic.Uint64
	mu      sync.Mutex
	waiting map[Token]Waker
	done    chan struct{}
}

// New starts a Poller and its goroutine; Close stops them.
func New() (*Poller, error) {
	sp, err := newSysPoller()
	if err != nil {
		return nil, err
	}
	p := &Poller{sys: sp, waiting: map[Token]Waker{}, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// Token returns a new token for Wait. The owner keeps it before it
// waits, so that a Cancel racing with the wait finds it.
func (p *Poller) Token() Token { return Token(p.next.Add(1)) }

// Wait arms rc's socket: once it is readable (or closed by the peer, or
// in error) w.Wake is called, unless Cancel(t) got there first. The
// socket stays the caller's: Wait reads nothing. On error nothing is
// armed and w is not called.
func (p *Poller) Wait(rc syscall.RawConn, t Token, w Waker) error {
	p.mu.Lock()
	p.waiting[t] = w
	p.mu.Unlock()
	var armErr error
	if err := rc.Control(func(fd uintptr) { armErr = p.sys.arm(int(fd), uint64(t)) }); err != nil {
		armErr = err
	}
	if armErr != nil {
		p.mu.Lock()
		delete(p.waiting, t)
		p.mu.Unlock()
		return armErr
	}
	return nil
}

// Cancel takes back the wait t and reports whether it was still waiting:
// true means the waker will not be called and the caller owns the
// session again; false means it was woken already (or t is stale). The
// socket may stay armed: a later readiness finds no waiter and is
// dropped, and the next Wait arms it again.
func (p *Poller) Cancel(t Token) bool {
	p.mu.Lock()
	_, ok := p.waiting[t]
	delete(p.waiting, t)
	p.mu.Unlock()
	return ok
}

// Waiting returns how many waits are armed.
func (p *Poller) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting)
}

// Close stops the Poller's goroutine. Waits still armed are not woken by
// their sockets any more; their owners must Cancel them.
func (p *Poller) Close() error {
	err := p.sys.wakeUp()
	<-p.done
	return errors.Join(err, p.sys.close())
}

func (p *Poller) run() {
	defer close(p.done)
	for {
		tokens, err := p.sys.wait()
		if err != nil {
			return
		}
		for _, tok := range tokens {
			t := Token(tok)
			p.mu.Lock()
			w, ok := p.waiting[t]
			delete(p.waiting, t)
			p.mu.Unlock()
			if ok {
				w.Wake()
			}
		}
	}
}
