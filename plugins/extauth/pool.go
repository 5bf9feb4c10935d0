package extauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/sdk"
)

// Restart backoff of a program that died or was killed: the delay before
// the next start doubles from minBackoff with each failure in a row, up to
// maxBackoff, as koi does for its plugins.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

var errClosed = errors.New("extauth backend is closed")

// pool runs Settings.Instances copies of the program and hands each
// request to a free one. The protocol has no request ids, so a program
// serves one request at a time; concurrency comes from the copies.
type pool struct {
	s      Settings
	idle   chan *instance // the instances no call holds
	closed chan struct{}
	// closeOnce closes closed; stopOnce stops the programs, once, for
	// Close may be called again.
	closeOnce, stopOnce sync.Once
	// failing counts the instances whose last start or request failed,
	// for health checks, which must not wait for a busy instance.
	failing atomic.Int32
}

// instance is one slot of the pool: a program, started again after it
// dies. Only the call that took it from pool.idle touches it.
type instance struct {
	failing  *atomic.Int32 // the pool's count
	s        Settings
	log      sdk.Logger
	proc     *process  // nil before the first start or after a failed one
	failures int       // deaths and failed starts in a row
	retryAt  time.Time // no start before this
}

// newPool starts every instance; a program that cannot be started at all
// (not executable, say) is an error, so that koi refuses to start.
func newPool(s Settings, log sdk.Logger) (*pool, error) {
	p := &pool{s: s, idle: make(chan *instance, s.Instances), closed: make(chan struct{})}
	for i := range s.Instances {
		in := &instance{failing: &p.failing, s: s, log: withArgs(log, "instance", i)}
		proc, err := startProcess(s, in.log)
		if err != nil {
			p.close()
			for range i {
				(<-p.idle).shutdown()
			}
			return nil, err
		}
		in.proc = proc
		p.idle <- in
	}
	return p, nil
}

// call sends one request frame to a free instance and returns the
// program's answer. A program that dies, hangs past the timeout or
// answers out of protocol is killed, and the call fails with
// sdk.ErrUnavailable; the instance starts a new program when next used.
func (p *pool) call(ctx context.Context, frame []byte) (bool, error) {
	var in *instance
	select {
	case in = <-p.idle:
	case <-p.closed:
		return false, fmt.Errorf("%w: %w", sdk.ErrUnavailable, errClosed)
	case <-ctx.Done():
		return false, fmt.Errorf("%w: every extauth program is busy: %w", sdk.ErrUnavailable, ctx.Err())
	}
	defer func() { p.idle <- in }()
	select {
	case <-p.closed: // close is waiting for this instance
		return false, fmt.Errorf("%w: %w", sdk.ErrUnavailable, errClosed)
	default:
	}
	return in.call(ctx, frame)
}

// healthy fails when no program works: every instance's last start or
// request failed.
func (p *pool) healthy() error {
	if n := int(p.failing.Load()); n == p.s.Instances {
		return fmt.Errorf("%w: all %d extauth programs are failing; see the log", sdk.ErrUnavailable, n)
	}
	return nil
}

// close refuses new calls.
func (p *pool) close() {
	p.closeOnce.Do(func() { close(p.closed) })
}

// shutdown refuses new calls and stops every program, waiting for the
// calls in flight, which the timeout bounds.
func (p *pool) shutdown() {
	p.stopOnce.Do(func() {
		p.close()
		// In parallel: each program may take stopGrace to exit.
		var wg sync.WaitGroup
		for range p.s.Instances {
			in := <-p.idle
			wg.Go(in.shutdown)
		}
		wg.Wait()
	})
}

func (in *instance) call(ctx context.Context, frame []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		// Sending now would only get a healthy program killed.
		return false, fmt.Errorf("%w: %w", sdk.ErrUnavailable, err)
	}
	if err := in.ready(ctx, in.deadline(ctx)); err != nil {
		return false, fmt.Errorf("%w: extauth program: %w", sdk.ErrUnavailable, err)
	}
	// The timeout is the program's time to answer: a restart just before
	// does not eat into it.
	ok, err := in.proc.exchange(ctx, frame, in.deadline(ctx))
	if err != nil {
		in.proc.log.Error("extauth program failed; killing it", "error", err.Error())
		in.proc.kill()
		in.proc = nil
		in.died()
		return false, fmt.Errorf("%w: extauth program: %w", sdk.ErrUnavailable, err)
	}
	if in.failures > 0 {
		in.failures = 0
		in.failing.Add(-1)
	}
	return ok, nil
}

// deadline is when a step of a call started now must be over.
func (in *instance) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(in.s.Timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// ready makes sure a program is running, starting a new one if the last
// died, but not before its backoff is over. A start that cannot happen
// before deadline fails at once rather than make the caller wait.
func (in *instance) ready(ctx context.Context, deadline time.Time) error {
	if in.proc != nil && in.proc.alive() {
		return nil
	}
	if in.proc != nil {
		in.proc.closePipes()
		in.proc = nil
		in.died()
	}
	if wait := time.Until(in.retryAt); wait > 0 {
		if in.retryAt.After(deadline) {
			return fmt.Errorf("restarting in %v", wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting to restart: %w", ctx.Err())
		}
	}
	proc, err := startProcess(in.s, in.log)
	if err != nil {
		in.log.Error("extauth program cannot be started", "error", err.Error())
		in.died()
		return err
	}
	in.log.Info("extauth program restarted", "pid", proc.cmd.Process.Pid)
	in.proc = proc
	return nil
}

// died records a death or failed start and sets when to try again.
func (in *instance) died() {
	if in.failures == 0 {
		in.failing.Add(1)
	}
	in.failures++
	backoff := maxBackoff
	if in.failures < 8 { // 100ms << 7 is already past maxBackoff
		backoff = min(minBackoff<<(in.failures-1), maxBackoff)
	}
	in.retryAt = time.Now().Add(backoff)
}

func (in *instance) shutdown() {
	if in.proc != nil {
		in.proc.stop()
		in.proc = nil
	}
}
