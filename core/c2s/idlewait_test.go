package c2s

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/core/router"
)

// deadlineCount counts the read deadlines set on a connection.
type deadlineCount struct {
	net.Conn
	sets atomic.Int64
}

func (d *deadlineCount) SetReadDeadline(t time.Time) error {
	d.sets.Add(1)
	return d.Conn.SetReadDeadline(t)
}

// The idle deadline is moved once per slack, not on every read, and the
// idle timeout still ends a silent read, no sooner than idle after the
// last byte read.
func TestDeadlineReaderIdleTimeout(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	dc := &deadlineCount{Conn: a}
	srv := New(Config{Host: func(string) Host { return fakeHost{} }, Router: router.New()})
	c := newConn(srv, dc, TLSDisabled)

	// A long idle timeout (a slack of a second): ten reads in a row move
	// the deadline once, or twice if they straddle the slack.
	r := deadlineReader{c, 64 * time.Second}
	go b.Write([]byte("0123456789"))
	var one [1]byte
	for range 10 {
		if _, err := r.Read(one[:]); err != nil {
			t.Fatal(err)
		}
	}
	if n := dc.sets.Load(); n < 1 || n > 2 {
		t.Errorf("10 reads set the read deadline %d times, want 1 or 2", n)
	}

	// A short one: the next silent read times out.
	const idle = 200 * time.Millisecond
	r = deadlineReader{c, idle}
	go b.Write([]byte("x"))
	if _, err := r.Read(one[:]); err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	_, err := r.Read(one[:])
	waited := time.Since(last)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent read ended with %v, want a deadline error", err)
	}
	if waited < idle {
		t.Errorf("idle timeout after %v, before the idle time %v", waited, idle)
	}
	t.Logf("idle timeout after %v (idle %v, slack %v)", waited, idle, deadlineSlack(idle))
}
