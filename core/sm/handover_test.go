package sm

import (
	"fmt"
	"slices"
	"testing"

	"github.com/koi-im/koi/core/jid"
)

type bufWriter struct{ got []string }

func (w *bufWriter) Write(b []byte) { w.got = append(w.got, string(b)) }

// TestTakeRestore: a state taken for a handover and restored elsewhere
// continues the counters: the replay is the unacknowledged stanzas, the
// next stanza is numbered after them, and an ack of all of them empties
// the queue.
func TestTakeRestore(t *testing.T) {
	s := NewState(10, 0)
	for i := range 5 {
		if err := s.Push(fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Handled()
	s.Handled()
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	in, acked, q := s.Take()
	if in != 2 || acked != 2 || len(q) != 3 || string(q[0]) != "m2" {
		t.Fatalf("Take: in %d acked %d queue %q", in, acked, q)
	}
	if err := s.Push([]byte("late")); err != ErrClosed {
		t.Fatalf("Push after Take: %v, want ErrClosed", err)
	}

	r := Restore(10, 0, in, acked, q)
	if err := r.Push([]byte("m5")); err != nil {
		t.Fatal(err)
	}
	w := &bufWriter{}
	r.Attach(w)
	if want := []string{"m2", "m3", "m4", "m5"}; !slices.Equal(w.got, want) {
		t.Fatalf("replay %q, want %q", w.got, want)
	}
	if sent, ack, un := r.Counts(); sent != 6 || ack != 2 || un != 4 || r.H() != 2 {
		t.Fatalf("restored counts sent %d acked %d unacked %d h %d", sent, ack, un, r.H())
	}
	if err := r.Ack(7); err == nil {
		t.Fatal("an ack beyond what was sent passed")
	}
	if err := r.Ack(6); err != nil {
		t.Fatal(err)
	}
	if _, _, un := r.Counts(); un != 0 {
		t.Fatalf("%d unacknowledged after acking all", un)
	}
}

// TestKeepDetached: every stanza queued is kept once, numbered, from the
// ones already queued to those pushed later, until Attach or Close.
func TestKeepDetached(t *testing.T) {
	s := NewState(10, 0)
	for i := range 3 {
		s.Push(fmt.Appendf(nil, "m%d", i))
	}
	s.Ack(1)
	s.Detach()
	var kept []string
	s.KeepDetached(func(n uint32, b []byte) { kept = append(kept, fmt.Sprintf("%d:%s", n, b)) })
	s.Push([]byte("m3"))
	s.Attach(&bufWriter{})
	s.Push([]byte("m4")) // attached: not kept
	if want := []string{"2:m1", "3:m2", "4:m3"}; !slices.Equal(kept, want) {
		t.Fatalf("kept %q, want %q", kept, want)
	}
	s.Detach()
	kept = nil
	s.KeepDetached(func(n uint32, b []byte) { kept = append(kept, fmt.Sprintf("%d:%s", n, b)) })
	s.Close()
	s.Push([]byte("m5"))
	if want := []string{"2:m1", "3:m2", "4:m3", "5:m4"}; !slices.Equal(kept, want) {
		t.Fatalf("kept after re-detach %q, want %q", kept, want)
	}
}

// TestRegistryPut: a handed-over session keeps its id here, for its owner
// only, and an id in use is not overwritten.
func TestRegistryPut(t *testing.T) {
	r := NewRegistry[int]()
	alice, bob := jid.MustParse("alice@x"), jid.MustParse("bob@x")
	if !r.Put("id1", jid.MustParse("alice@x/phone"), 1) {
		t.Fatal("Put refused a free id")
	}
	if r.Put("id1", bob, 2) {
		t.Fatal("Put overwrote an id in use")
	}
	if v, err := r.Claim("id1", alice); err != nil || v != 1 {
		t.Fatalf("Claim by the owner: %v, %v", v, err)
	}
	if _, err := r.Claim("id1", bob); err == nil {
		t.Fatal("another account claimed the session")
	}
}
