//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package admission

import (
	"context"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestYieldLetsReadySocketsRunFirst: on one P, a goroutine whose socket
// became readable before the Yield has run by the time Yield returns. A
// plain runtime.Gosched would not run it: nothing polls the network while
// the run queues hold work, and here the yielder is that work (with
// Gosched as the step, the reader ran first in 0 of 600 rounds).
func TestYieldLetsReadySocketsRunFirst(t *testing.T) {
	y, err := NewYielder()
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	rounds(t, "Yield", y.Yield)
}

// TestAcquireYields: a step admitted by the pool, even at once, starts
// after the sessions whose data is in.
func TestAcquireYields(t *testing.T) {
	p, err := New(1, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	rounds(t, "Acquire", func() {
		release, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		release()
	})
}

// rounds runs readerRanFirst 20 times and fails when the reader was late
// in more than 2. Not in every round: the runtime sometimes has a thread
// without a P waiting in the poller, and when that thread takes the
// reader's wake-up it queues the reader only after the Yield has returned
// (about one round in 10,000 here, more on a loaded machine).
func rounds(t *testing.T, what string, step func()) {
	t.Helper()
	late := 0
	for range 20 {
		if !readerRanFirst(t, step) {
			late++
		}
	}
	if late > 2 {
		t.Fatalf("in %d of 20 rounds the reader whose data was in had not run when %s returned", late, what)
	}
}

// readerRanFirst runs step on one P right after data reached a parked
// reader, and reports whether the reader ran before step returned.
func readerRanFirst(t *testing.T, step func()) bool {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	c1, c2 := unixPair(t)
	defer c1.Close()
	defer c2.Close()
	var ran atomic.Bool
	parked := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		close(parked)
		var b [1]byte
		if _, err := c2.Read(b[:]); err == nil {
			ran.Store(true)
		}
	}()
	<-parked
	runtime.Gosched() // let the reader reach its Read and park there
	if _, err := c1.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	step()
	r := ran.Load()
	<-done
	return r
}

// TestYieldConcurrent: yielders take turns and all return.
func TestYieldConcurrent(t *testing.T) {
	y, err := NewYielder()
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	done := make(chan struct{})
	for range 8 {
		go func() {
			for range 100 {
				y.Yield()
			}
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
}

// unixPair returns the two ends of a Unix socket pair, both polled by the
// runtime: a write to one makes the other readable at once, as TCP over
// loopback does not promise on a loaded machine.
func unixPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cs [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
	}
	return cs[0], cs[1]
}
