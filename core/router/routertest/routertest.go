// Package routertest gives tests a router.Conn that records what a client
// would read, for tests that run the module server without sockets.
package routertest

import (
	"sync"

	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Recorder is a router.Conn that keeps every stanza sent to it.
type Recorder struct {
	mu     sync.Mutex
	got    []*xmlstream.Element
	closed string
}

// Send implements router.Conn. It serialises and re-parses el, as the
// wire would, so that tests see exactly what a client would read.
func (r *Recorder) Send(el *xmlstream.Element) bool {
	p, err := stanza.Parse(el.String())
	if err != nil {
		panic(err) // the server built XML it cannot read back: a bug
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, p)
	return true
}

// Close implements router.Conn; Closed reports the condition.
func (r *Recorder) Close(condition, _ string) {
	r.mu.Lock()
	r.closed = condition
	r.mu.Unlock()
}

// Closed is the condition of the last Close, "" if none.
func (r *Recorder) Closed() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Take returns and forgets everything received so far.
func (r *Recorder) Take() []*xmlstream.Element {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

// Unread puts els back in front of what was received since, for a test
// that took everything to pick one stanza out.
func (r *Recorder) Unread(els []*xmlstream.Element) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(els, r.got...)
}
