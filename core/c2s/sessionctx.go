package c2s

import (
	"context"
	"sync"
	"time"
)

// sessionCtx is the context a session's stanza handlers get: it ends when
// the session does. context.WithCancel would do the same, but a cancelCtx
// links each context derived from it into a map that stays allocated once
// made, and every backend call derives one (its timeout): an idle session
// kept that map, its timer-era entries gone, for its whole life. Here
// derived contexts register through AfterFunc (the context package looks
// for that method) and the list goes away when the last one is done.
type sessionCtx struct {
	mu    sync.Mutex
	done  chan struct{} // made by the first Done
	err   error
	after []*afterFunc // registered by AfterFunc, not yet run or stopped
}

type afterFunc struct{ f func() }

var _ context.Context = (*sessionCtx)(nil)

// Deadline implements context.Context: a session has none.
func (s *sessionCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Value implements context.Context: a session carries no values.
func (s *sessionCtx) Value(any) any { return nil }

// Done implements context.Context.
func (s *sessionCtx) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
		if s.err != nil {
			close(s.done)
		}
	}
	return s.done
}

// Err implements context.Context.
func (s *sessionCtx) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// AfterFunc arranges for f to run in its own goroutine once the session
// ends, as context.AfterFunc does; stop unregisters it and reports whether
// it did so before f was started.
func (s *sessionCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	s.after = append(s.after, a)
	s.mu.Unlock()
	return func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, b := range s.after {
			if b == a {
				last := len(s.after) - 1
				s.after[i] = s.after[last]
				s.after[last] = nil
				s.after = s.after[:last]
				if last == 0 {
					s.after = nil
				}
				return true
			}
		}
		return false
	}
}

// cancel ends the session's context.
func (s *sessionCtx) cancel() {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = context.Canceled
	if s.done != nil {
		close(s.done)
	}
	after := s.after
	s.after = nil
	s.mu.Unlock()
	for _, a := range after {
		go a.f()
	}
}
