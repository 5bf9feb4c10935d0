package sm

import (
	"fmt"
	"time"

	"github.com/koi-im/koi/core/jid"
)

// Handover is a resumable session moving to another node of a cluster:
// what the node the client came back to needs to continue the stream
// where it was. It is encoded as JSON between the nodes.
type Handover struct {
	JID string `json:"jid"` // the session's full JID
	// In and Acked are the counters (the h of each side), Unacked the
	// stanzas the client has not acknowledged, oldest first.
	In      uint32        `json:"in"`
	Acked   uint32        `json:"acked"`
	Unacked [][]byte      `json:"unacked,omitempty"`
	Timeout time.Duration `json:"timeout"`
	// The router's state of the session: it keeps its presence, and
	// nobody sees a new one.
	Available  bool     `json:"available,omitempty"`
	Priority   int      `json:"priority,omitempty"`
	Presence   string   `json:"presence,omitempty"`
	Interested bool     `json:"interested,omitempty"`
	Carbons    bool     `json:"carbons,omitempty"`
	Directed   []string `json:"directed,omitempty"`
}

// RefusedError is a resumption refused because its h acknowledges more
// than was sent; In is the h the client gets in <failed/>.
type RefusedError struct{ In uint32 }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("resumption refused: h acknowledges more than was sent (we handled %d)", e.In)
}

// Take ends the state for a handover: like Close it returns the stanzas
// not acknowledged, and also the counters a new State continues from.
func (s *State) Take() (in, acked uint32, unacked [][]byte) {
	s.mu.Lock()
	in, acked = s.in, s.acked
	s.mu.Unlock()
	return in, acked, s.Close()
}

// Restore returns the state of a session handed over by another node: it
// continues the counters, and Attach replays unacked.
func Restore(max, every int, in, acked uint32, unacked [][]byte) *State {
	s := NewState(max, every)
	s.in, s.acked = in, acked
	s.queue = unacked
	s.sent = acked + uint32(len(unacked))
	return s
}

// Put registers v under an id that another node made (a session handed
// over keeps its id: the client may resume it again). It reports false
// when the id is taken here.
func (r *Registry[T]) Put(id string, owner jid.JID, v T) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, taken := r.m[id]; taken {
		return false
	}
	r.m[id] = &entry[T]{owner: owner.Bare(), v: v}
	return true
}

// KeepDetached hands keep a copy of every stanza queued, numbered (the
// count of stanzas sent when it was), first those queued now, then each
// one pushed until Attach or Close. A node of a cluster keeps them where
// they outlive it: should it die, another node treats them as undelivered.
// keep runs under the state's lock and must not block or call back.
func (s *State) KeepDetached(keep func(n uint32, b []byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.queue[s.head:] {
		keep(s.acked+uint32(i)+1, b)
	}
	s.keep = keep
}
