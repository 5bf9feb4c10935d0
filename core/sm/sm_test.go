package sm

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/koi-im/koi/core/jid"
)

type recorder struct{ got []string }

func (r *recorder) Write(b []byte) { r.got = append(r.got, string(b)) }

func push(t *testing.T, s *State, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := s.Push([]byte(n)); err != nil {
			t.Fatalf("Push(%s): %v", n, err)
		}
	}
}

func strs(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func TestAckTrimsAndReplayIsTheRest(t *testing.T) {
	s := NewState(10, 0)
	w := &recorder{}
	s.Attach(w)
	push(t, s, "a", "b", "c", "d")
	if fmt.Sprint(w.got) != "[a b c d]" {
		t.Fatalf("written %v", w.got)
	}
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	if sent, acked, un := s.Counts(); sent != 4 || acked != 2 || un != 2 {
		t.Fatalf("counts %d %d %d", sent, acked, un)
	}
	// An older h (late <a/>) acknowledges nothing new and is no error.
	if err := s.Ack(1); err != nil {
		t.Fatalf("old h: %v", err)
	}
	s.Detach()
	push(t, s, "e")
	w2 := &recorder{}
	s.Attach(w2)
	if fmt.Sprint(w2.got) != "[c d e]" {
		t.Fatalf("replayed %v, want [c d e]", w2.got)
	}
	if got := strs(s.Close()); fmt.Sprint(got) != "[c d e]" {
		t.Fatalf("Close returned %v", got)
	}
	if err := s.Push([]byte("f")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Push after Close: %v", err)
	}
	if s.Close() != nil {
		t.Fatal("second Close returned stanzas")
	}
}

func TestAckTooHigh(t *testing.T) {
	s := NewState(10, 0)
	push(t, s, "a", "b")
	var e *HandledTooHighError
	if err := s.Ack(3); !errors.As(err, &e) || e.H != 3 || e.Sent != 2 {
		t.Fatalf("Ack(3) = %v", err)
	}
	if _, acked, un := s.Counts(); acked != 0 || un != 2 {
		t.Fatalf("a refused ack changed the state: acked %d unacked %d", acked, un)
	}
}

func TestCountersWrapAt2To32(t *testing.T) {
	s := NewState(10, 0)
	// Start just below the wrap, as after 2^32-2 stanzas.
	s.sent, s.acked = math.MaxUint32-1, math.MaxUint32-1
	s.in = math.MaxUint32
	push(t, s, "a", "b", "c", "d")
	if sent, _, _ := s.Counts(); sent != 2 {
		t.Fatalf("sent = %d, want 2 after wrapping", sent)
	}
	if err := s.Ack(0); err != nil { // a, b acknowledged: h wrapped to 0
		t.Fatal(err)
	}
	if _, acked, un := s.Counts(); acked != 0 || un != 2 {
		t.Fatalf("acked %d unacked %d", acked, un)
	}
	if err := s.Ack(math.MaxUint32); err != nil { // older than 0: nothing new
		t.Fatal(err)
	}
	if err := s.Ack(3); err == nil {
		t.Fatal("h beyond sent accepted across the wrap")
	}
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	if got := s.Handled(); got != 0 {
		t.Fatalf("inbound h = %d, want 0 after wrapping", got)
	}
}

func TestQueueBound(t *testing.T) {
	s := NewState(3, 0)
	push(t, s, "a", "b", "c")
	if err := s.Push([]byte("d")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("4th push: %v", err)
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	push(t, s, "d")
	if got := strs(s.Close()); fmt.Sprint(got) != "[b c d]" {
		t.Fatalf("queue %v", got)
	}
}

func TestQueueDoesNotGrowOnALongSession(t *testing.T) {
	s := NewState(8, 0)
	for i := range 10000 {
		push(t, s, "x")
		if err := s.Ack(uint32(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	push(t, s, "a", "b", "c")
	s.Ack(10001)
	if cap(s.queue) > 16 {
		t.Fatalf("backing array grew to %d", cap(s.queue))
	}
	if got := strs(s.Close()); fmt.Sprint(got) != "[b c]" {
		t.Fatalf("queue %v", got)
	}
}

func TestRequestAckEvery(t *testing.T) {
	s := NewState(100, 2)
	w := &recorder{}
	s.Attach(w)
	push(t, s, "a", "b", "c")
	r := string(requestAck)
	if want := fmt.Sprint([]string{"a", "b", r, "c"}); fmt.Sprint(w.got) != want {
		t.Fatalf("written %v, want %v", w.got, want)
	}
	// A resumed connection with unacked stanzas asks at once.
	w2 := &recorder{}
	s.Attach(w2)
	if fmt.Sprint(w2.got) != fmt.Sprint([]string{"a", "b", "c", r}) {
		t.Fatalf("replay %v", w2.got)
	}
}

func mustJID(t *testing.T, s string) jid.JID {
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestRegistryOwnerCheck(t *testing.T) {
	r := NewRegistry[string]()
	id := r.Add(mustJID(t, "alice@example.com/phone"), "alice's")
	if len(id) < 20 {
		t.Fatalf("id %q too short to be unguessable", id)
	}
	if _, err := r.Claim(id, mustJID(t, "mallory@example.com")); !errors.Is(err, ErrUnknown) || !errors.Is(err, ErrNotOwner) {
		t.Fatalf("claim by another account: %v", err)
	}
	if _, err := r.Claim("nope", mustJID(t, "alice@example.com")); !errors.Is(err, ErrUnknown) || errors.Is(err, ErrNotOwner) {
		t.Fatalf("claim of an unknown id: %v", err)
	}
	// Any resource of the owner may resume (a client may come back with
	// another connection, even another address).
	v, err := r.Claim(id, mustJID(t, "alice@example.com/laptop"))
	if err != nil || v != "alice's" {
		t.Fatalf("claim by the owner: %q %v", v, err)
	}
	if r.Add(mustJID(t, "alice@example.com"), "x") == id {
		t.Fatal("ids repeat")
	}
}

func TestRegistryExpiry(t *testing.T) {
	r := NewRegistry[int]()
	alice := mustJID(t, "alice@example.com")
	expired := make(chan int, 4)
	a := r.Add(alice, 1)
	b := r.Add(alice, 2)
	c := r.Add(alice, 3)
	r.Detach(a, time.Millisecond, func(v int) { expired <- v })
	r.Detach(b, time.Hour, func(v int) { expired <- v })
	r.Detach(c, 20*time.Millisecond, func(v int) { expired <- v })
	if all, det := r.Len(); all != 3 || det != 3 {
		t.Fatalf("Len %d %d", all, det)
	}
	if v := <-expired; v != 1 {
		t.Fatalf("expired %d first", v)
	}
	if _, err := r.Claim(a, alice); !errors.Is(err, ErrUnknown) {
		t.Fatalf("an expired session was claimed: %v", err)
	}
	// Claiming stops the timer: c never expires.
	if _, err := r.Claim(c, alice); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	select {
	case v := <-expired:
		t.Fatalf("claimed or distant session %d expired", v)
	default:
	}
	if all, det := r.Len(); all != 2 || det != 1 {
		t.Fatalf("Len %d %d", all, det)
	}
	got := r.Detached(true)
	if len(got) != 1 || got[0] != 2 {
		t.Fatalf("Detached %v", got)
	}
	if all, _ := r.Len(); all != 1 {
		t.Fatalf("%d left after taking the detached ones", all)
	}
	r.Remove(c)
	if all, _ := r.Len(); all != 0 {
		t.Fatal("Remove left the entry")
	}
}

func TestRegistryClaimRacesExpiry(t *testing.T) {
	// Whoever wins, a session is either claimed or expired, never both.
	r := NewRegistry[int]()
	alice := mustJID(t, "alice@example.com")
	for i := range 200 {
		id := r.Add(alice, i)
		expired := make(chan struct{}, 2)
		r.Detach(id, time.Duration(i%3)*time.Microsecond, func(int) { expired <- struct{}{} })
		_, err := r.Claim(id, alice)
		if err != nil {
			// Lost the race: the expiry must run (it may still be on its way).
			select {
			case <-expired:
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: neither claimed nor expired", i)
			}
		}
		time.Sleep(20 * time.Microsecond)
		if len(expired) != 0 {
			t.Fatalf("round %d: claimed=%v and expired too", i, err == nil)
		}
		r.Remove(id)
	}
}
