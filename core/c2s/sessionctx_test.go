package c2s

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSessionCtxEndsDerivedContexts(t *testing.T) {
	s := &sessionCtx{}
	child, cancelChild := context.WithTimeout(s, time.Hour)
	defer cancelChild()
	other, cancelOther := context.WithCancel(s)
	if len(s.after) != 2 {
		t.Fatalf("%d registered after deriving two contexts, want 2", len(s.after))
	}
	// A derived context that ends first unregisters itself; once none is
	// left the session holds nothing for them.
	cancelOther()
	if other.Err() == nil || len(s.after) != 1 {
		t.Fatalf("after cancelling one: err %v, %d registered", other.Err(), len(s.after))
	}
	if s.Err() != nil || child.Err() != nil {
		t.Fatalf("nothing ended the session yet: %v, %v", s.Err(), child.Err())
	}
	s.cancel()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a context derived from the session did not end with it")
	}
	if !errors.Is(child.Err(), context.Canceled) || !errors.Is(s.Err(), context.Canceled) {
		t.Fatalf("errors %v, %v; want context.Canceled", child.Err(), s.Err())
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after cancel")
	}
	// Derived after the end: ended at once.
	late, cancelLate := context.WithTimeout(s, time.Hour)
	defer cancelLate()
	select {
	case <-late.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a context derived after the session ended is still open")
	}
}

func TestSessionCtxLeavesNothingBehind(t *testing.T) {
	s := &sessionCtx{}
	s.Done()
	for range 100 {
		_, cancel := context.WithTimeout(s, time.Minute)
		cancel()
	}
	if s.after != nil {
		t.Fatalf("%d entries (cap %d) kept after every derived context ended", len(s.after), cap(s.after))
	}
}
