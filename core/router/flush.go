package router

import "time"

// The offline flush gate. A session that becomes available is sent the
// messages stored for its user while it was away (XEP-0160); a message
// routed live to the user in the meantime must not overtake them. The
// flush runs inside BeginFlush ... end; a delivery that finds a flush
// running waits for it (AwaitFlush). Deliveries read the gate without a
// lock: one atomic load per message.

// maxFlushWait bounds how long a delivery waits for a flush: a backend
// that hangs delays the user's new messages, it does not stop them.
const maxFlushWait = 5 * time.Second

// BeginFlush marks the start of an offline delivery to u and returns the
// function that marks its end. Call it before the session becomes
// available (SetPresence), so that every delivery that sees the session
// available also sees the flush. Flushes of one user run one at a time:
// BeginFlush waits for a running one to end, at most maxFlushWait; after
// that it goes ahead without the gate (end does nothing) rather than hang
// on a flush that hangs.
func (u *User) BeginFlush() (end func()) {
	done := make(chan struct{})
	var timeout <-chan time.Time
	for !u.flush.CompareAndSwap(nil, &done) {
		cur := u.flush.Load()
		if cur == nil {
			continue
		}
		if timeout == nil {
			t := time.NewTimer(maxFlushWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-*cur:
		case <-timeout:
			return func() {}
		}
	}
	return func() {
		u.flush.Store(nil)
		close(done)
	}
}

// AwaitFlush waits, at most maxFlushWait, for an offline delivery to u
// that is running; it returns at once when none is.
func (u *User) AwaitFlush() {
	cur := u.flush.Load()
	if cur == nil {
		return
	}
	t := time.NewTimer(maxFlushWait)
	defer t.Stop()
	select {
	case <-*cur:
	case <-t.C:
	}
}
