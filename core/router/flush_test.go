package router

import (
	"testing"
	"time"

	"github.com/koi-im/koi/core/jid"
)

func TestFlushGate(t *testing.T) {
	r := New()
	s, _ := r.Bind(jid.MustParse("alice@example.com/pc"), nil)
	u := s.User()
	u.AwaitFlush() // none runs: returns at once

	end := u.BeginFlush()
	waited := make(chan struct{})
	go func() {
		u.AwaitFlush()
		close(waited)
	}()
	second := make(chan func())
	go func() { second <- u.BeginFlush() }()
	select {
	case <-waited:
		t.Fatal("AwaitFlush returned while a flush runs")
	case <-second:
		t.Fatal("a second flush began while the first runs")
	case <-time.After(50 * time.Millisecond):
	}
	end()
	<-waited
	end2 := <-second // begins once the first ended
	if u.flush.Load() == nil {
		t.Fatal("the second flush holds no gate")
	}
	end2()
	if u.flush.Load() != nil {
		t.Fatal("the gate is still shut after every flush ended")
	}
}
