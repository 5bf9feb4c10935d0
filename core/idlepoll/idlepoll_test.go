package idlepoll

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/testsvc"
)

type chanWaker chan struct{}

func (c chanWaker) Wake() { c <- struct{}{} }

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if errors.Is(err, ErrUnsupported) {
		// Only Linux has the poller; CI runs on Linux, where this is a bug.
		testsvc.Require(t, fmt.Errorf("%w: idlepoll: no epoll on %s: idle sessions keep their goroutines here", testsvc.ErrMissing, runtime.GOOS))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// pair returns the server end's raw socket and the client end of a
// loopback TCP connection.
func pair(t *testing.T) (net.Conn, syscall.RawConn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	rc, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return server, rc, client
}

func woken(t *testing.T, w chanWaker) {
	t.Helper()
	select {
	case <-w:
	case <-time.After(5 * time.Second):
		t.Fatal("not woken")
	}
}

func notWoken(t *testing.T, w chanWaker) {
	t.Helper()
	select {
	case <-w:
		t.Fatal("woken")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWakeOnData(t *testing.T) {
	p := newPoller(t)
	server, rc, client := pair(t)
	w := make(chanWaker, 2)
	tok := p.Token()
	if err := p.Wait(rc, tok, w); err != nil {
		t.Fatal(err)
	}
	notWoken(t, w)
	client.Write([]byte("x"))
	woken(t, w)
	if p.Cancel(tok) {
		t.Error("Cancel after the wake took the wait back")
	}
	// The byte is still there: the poller reads nothing.
	b := make([]byte, 1)
	server.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := server.Read(b); n != 1 || err != nil {
		t.Fatalf("read %d %v", n, err)
	}
	// Armed again (the socket is known to the epoll set now): woken once
	// more, and only once per Wait.
	tok = p.Token()
	if err := p.Wait(rc, tok, w); err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("yz"))
	woken(t, w)
	client.Write([]byte("more"))
	notWoken(t, w)
	if p.Waiting() != 0 {
		t.Errorf("waiting %d, want 0", p.Waiting())
	}
}

func TestCancelBeforeReady(t *testing.T) {
	p := newPoller(t)
	_, rc, client := pair(t)
	w := make(chanWaker, 1)
	tok := p.Token()
	if err := p.Wait(rc, tok, w); err != nil {
		t.Fatal(err)
	}
	if !p.Cancel(tok) {
		t.Fatal("Cancel of an armed wait returned false")
	}
	if p.Cancel(tok) {
		t.Fatal("a second Cancel returned true")
	}
	client.Write([]byte("x"))
	notWoken(t, w)
}

func TestWakeOnPeerClose(t *testing.T) {
	p := newPoller(t)
	_, rc, client := pair(t)
	w := make(chanWaker, 1)
	if err := p.Wait(rc, p.Token(), w); err != nil {
		t.Fatal(err)
	}
	client.Close()
	woken(t, w)
}

func TestWaitOnClosedSocket(t *testing.T) {
	p := newPoller(t)
	server, rc, _ := pair(t)
	server.Close()
	tok := p.Token()
	if err := p.Wait(rc, tok, make(chanWaker, 1)); err == nil {
		t.Fatal("Wait on a closed socket succeeded")
	}
	if p.Cancel(tok) || p.Waiting() != 0 {
		t.Error("a failed Wait left its token waiting")
	}
}

func TestManySockets(t *testing.T) {
	p := newPoller(t)
	const n = 300
	clients := make([]net.Conn, n)
	w := make(chanWaker, n)
	for i := range clients {
		_, rc, client := pair(t)
		clients[i] = client
		if err := p.Wait(rc, p.Token(), w); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		c.Write([]byte("x"))
	}
	for range n {
		woken(t, w)
	}
	notWoken(t, w)
}
