// Package throttle counts authentication failures per key (an IP address,
// an account) and says when a key has failed too often recently.
//
// Memory is bounded without a background goroutine: entries whose failures
// have all left the window are dropped lazily as new failures come in, and
// when the table is full the key that failed least recently is evicted.
package throttle

import (
	"container/list"
	"sync"
	"time"
)

// DefaultMaxKeys caps how many keys a Limiter tracks. At the default the
// table costs some 15 MB at most (about 150 bytes per key, plus the key
// itself and 8 bytes per remembered failure).
const DefaultMaxKeys = 100_000

// Limiter is a sliding-window failure counter: Allow reports false once a
// key has failed limit times within the last window. It is safe for
// concurrent use.
//
// Use one Limiter per kind of key (IP addresses, accounts): under pressure a
// full table evicts its least recently failed keys, and a flood of one kind
// must not flush the other.
type Limiter struct {
	now     func() time.Time
	epoch   time.Time // times are kept as offsets from it: 8 bytes, monotonic
	maxKeys int

	mu sync.Mutex
	// limit and window change with SetLimit (a configuration reload);
	// the events already counted stay, so a reload neither forgives an
	// address nor punishes it twice.
	limit  int
	window time.Duration
	keys   map[string]*list.Element // of *entry
	lru    list.List                // front: least recently failed
}

type entry struct {
	key string
	// fails holds the times of the most recent failures, oldest first, at
	// most limit of them: more would not change any answer.
	fails []time.Duration
}

// New returns a Limiter that refuses a key after limit failures within
// window. now is the clock (nil means time.Now). A limit or window below 1
// disables throttling: Allow is always true.
func New(limit int, window time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{
		limit:   limit,
		window:  window,
		now:     now,
		epoch:   now(),
		maxKeys: DefaultMaxKeys,
		keys:    map[string]*list.Element{},
	}
	l.lru.Init()
	return l
}

// disabled is called with mu held.
func (l *Limiter) disabled() bool { return l.limit < 1 || l.window <= 0 }

// SetLimit changes the limit and the window; events already recorded count
// under the new ones (at most the old limit of them per key was kept). A
// limit or window below 1 disables the Limiter, as with New. A nil Limiter
// ignores it.
func (l *Limiter) SetLimit(limit int, window time.Duration) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit, l.window = limit, window
}

// Limit returns the current limit and window.
func (l *Limiter) Limit() (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.window
}

// clock returns the current time as an offset from the epoch. time.Time's
// Sub uses the monotonic reading when both times have one, so a wall clock
// step does not unblock or block anyone.
func (l *Limiter) clock() time.Duration { return l.now().Sub(l.epoch) }

// live reports whether a failure at t still counts at now. A failure in the
// future (a clock that went backwards) counts, which errs on the safe side.
func (l *Limiter) live(t, now time.Duration) bool { return now-t < l.window }

// prune drops failures that left the window.
func (l *Limiter) prune(e *entry, now time.Duration) {
	i := 0
	for i < len(e.fails) && !l.live(e.fails[i], now) {
		i++
	}
	if i > 0 {
		e.fails = append(e.fails[:0], e.fails[i:]...)
	}
}

// Allow reports whether key may try again: false when it has limit or more
// failures within the window.
func (l *Limiter) Allow(key string) bool {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.disabled() {
		return true
	}
	el, ok := l.keys[key]
	if !ok {
		return true
	}
	e := el.Value.(*entry)
	l.prune(e, now)
	if len(e.fails) == 0 {
		l.remove(el)
		return true
	}
	return len(e.fails) < l.limit
}

// RetryAfter returns how long key must wait until Allow reports true again:
// 0 when it may try now.
func (l *Limiter) RetryAfter(key string) time.Duration {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.disabled() {
		return 0
	}
	el, ok := l.keys[key]
	if !ok {
		return 0
	}
	e := el.Value.(*entry)
	l.prune(e, now)
	if len(e.fails) < l.limit {
		return 0
	}
	// The oldest of the newest limit failures leaving the window lets the
	// key in again.
	return max(e.fails[len(e.fails)-l.limit]+l.window-now, time.Nanosecond)
}

// Count returns how many failures of key are in the window, at most limit.
func (l *Limiter) Count(key string) int {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.disabled() {
		return 0
	}
	el, ok := l.keys[key]
	if !ok {
		return 0
	}
	e := el.Value.(*entry)
	l.prune(e, now)
	return len(e.fails)
}

// Fail records a failure for key.
func (l *Limiter) Fail(key string) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.disabled() {
		return
	}
	l.sweep(now)
	el, ok := l.keys[key]
	if !ok {
		for len(l.keys) >= l.maxKeys {
			l.remove(l.lru.Front())
		}
		el = l.lru.PushBack(&entry{key: key, fails: make([]time.Duration, 0, min(l.limit, 4))})
		l.keys[key] = el
	} else {
		l.lru.MoveToBack(el)
	}
	e := el.Value.(*entry)
	l.prune(e, now)
	if n := len(e.fails) - l.limit + 1; n > 0 {
		// Only the newest limit failures can matter (more were kept
		// under a higher limit before SetLimit).
		e.fails = append(e.fails[:0], e.fails[n:]...)
	}
	e.fails = append(e.fails, now)
}

// Reset forgets key's failures, as after a successful login for an account.
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.keys[key]; ok {
		l.remove(el)
	}
}

// Len returns how many keys are tracked, expired ones not yet swept
// included.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// sweep drops keys whose newest failure left the window. The list is in
// order of last failure, so the expired keys are at the front and each Fail
// pays only for the keys it removes.
func (l *Limiter) sweep(now time.Duration) {
	for el := l.lru.Front(); el != nil; el = l.lru.Front() {
		e := el.Value.(*entry)
		if len(e.fails) > 0 && l.live(e.fails[len(e.fails)-1], now) {
			return
		}
		l.remove(el)
	}
}

func (l *Limiter) remove(el *list.Element) {
	l.lru.Remove(el)
	delete(l.keys, el.Value.(*entry).key)
}

// Take records an event for key unless key already has limit events within
// the window; it returns 0 when the event was recorded, otherwise how long
// until key may try again. Check and record are one step, so concurrent
// callers cannot overshoot the limit. Used as a rate limit: an event is a
// connection or a login, not a failure, and refused events are not
// recorded, so the retry time it gives is the true one. A nil Limiter
// takes everything.
func (l *Limiter) Take(key string) time.Duration {
	if l == nil {
		return 0
	}
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.disabled() {
		return 0
	}
	if el, ok := l.keys[key]; ok {
		e := el.Value.(*entry)
		l.prune(e, now)
		if len(e.fails) >= l.limit {
			return max(e.fails[len(e.fails)-l.limit]+l.window-now, time.Nanosecond)
		}
	}
	l.sweep(now)
	el, ok := l.keys[key]
	if !ok {
		for len(l.keys) >= l.maxKeys {
			l.remove(l.lru.Front())
		}
		el = l.lru.PushBack(&entry{key: key, fails: make([]time.Duration, 0, min(l.limit, 4))})
		l.keys[key] = el
	} else {
		l.lru.MoveToBack(el)
	}
	e := el.Value.(*entry)
	e.fails = append(e.fails, now)
	return 0
}
