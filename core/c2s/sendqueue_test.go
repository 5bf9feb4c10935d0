package c2s

import (
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/xmlstream"
)

// countConn is a transport that counts what is written to it, so that a
// benchmark measures the send path, not the network.
type countConn struct {
	net.Conn // nil: only what the send path calls is implemented
	bytes    atomic.Int64
	writes   atomic.Int64

	mu   sync.Mutex
	keep bool // keep what is written in got
	got  []byte
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	c.bytes.Add(int64(len(p)))
	if c.keep {
		c.mu.Lock()
		c.got = append(c.got, p...)
		c.mu.Unlock()
	}
	return len(p), nil
}

// written waits for the writer to finish and returns what it wrote.
func (c *countConn) written(sc *conn) string {
	sc.waitWriters()
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.got)
}
func (c *countConn) SetWriteDeadline(time.Time) error { return nil }
func (c *countConn) SetReadDeadline(time.Time) error  { return nil }
func (c *countConn) Close() error                     { return nil }
func (c *countConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5} }

func newCountConn(tb testing.TB, queue int) (*conn, *countConn) {
	tb.Helper()
	cc := &countConn{}
	srv := New(Config{Host: func(string) Host { return fakeHost{} }, Router: router.New(), SendQueue: queue})
	c := newConn(srv, cc, TLSDisabled)
	tb.Cleanup(c.waitWriters)
	return c, cc
}

// BenchmarkConnSendBurst sends bursts of 32 messages to one session, as
// a busy conversation does, and waits until they are written.
func BenchmarkConnSendBurst(b *testing.B) {
	c, cc := newCountConn(b, 1<<16)
	const burst = 32
	msgs := make([]*xmlstream.Element, burst)
	size := 0
	for i := range msgs {
		msgs[i] = body("m"+strconv.Itoa(i), "a@localhost/r")
		size += len(msgs[i].AppendXML(nil, xmlstream.NSClient))
	}
	b.ReportAllocs()
	b.ResetTimer()
	want := int64(0)
	for range b.N {
		for _, m := range msgs {
			if !c.Send(m) {
				b.Fatal("Send refused")
			}
		}
		want += int64(size)
		for cc.bytes.Load() < want {
			// Yield, not sleep: a sleep would measure the timer.
			runtime.Gosched()
		}
	}
	b.ReportMetric(float64(cc.writes.Load())/float64(b.N), "writes/op")
}

// A held queue (Bind 2 in progress) keeps stanzas in order behind what is
// released first, and its entries count against the queue bound.
func TestSendQueueHold(t *testing.T) {
	c, cc := newCountConn(t, 3)
	cc.keep = true
	c.holdQueue()
	for _, id := range []string{"m1", "m2", "m3"} {
		if !c.Send(body(id, "a@localhost/r")) {
			t.Fatalf("Send(%s) refused below the bound", id)
		}
	}
	if cc.writes.Load() != 0 {
		t.Fatal("a held queue was written")
	}
	if c.enqueue([]byte("<x/>"), false) {
		t.Fatal("enqueue past the bound accepted")
	}
	c.releaseQueue([]byte("<success/>"))
	got := cc.written(c)
	var ids []string
	for _, m := range idAttr.FindAllStringSubmatch(got, -1) {
		ids = append(ids, m[1])
	}
	if !strings.HasPrefix(got, "<success/>") || strings.Join(ids, " ") != "m1 m2 m3" {
		t.Errorf("released queue wrote %q", got)
	}
}

// A full queue refuses the stanza and closes the stream; the closing tail
// is still written, after what was queued.
func TestSendQueueFull(t *testing.T) {
	c, cc := newCountConn(t, 2)
	cc.keep = true
	c.headerSent = true
	c.holdQueue()
	c.Send(body("m1", "a@localhost/r"))
	c.Send(body("m2", "a@localhost/r"))
	if c.Send(body("m3", "a@localhost/r")) {
		t.Fatal("Send past the bound accepted")
	}
	if !c.closed.Load() {
		t.Fatal("a full queue did not close the stream")
	}
	c.releaseQueue(nil)
	got := cc.written(c)
	if strings.Contains(got, "m3") || !strings.HasSuffix(got, "</stream:stream>") || !strings.Contains(got, "policy-violation") {
		t.Errorf("wrote %q", got)
	}
	if c.out.pending != nil || c.out.writerOn {
		t.Error("a stopped writer left its buffer or its flag")
	}
}

// A session ending waits for its writer while other sessions' stanzas
// still come in and start the writer again. That must neither crash the
// server (a WaitGroup panics when it is added to while a Wait is waking
// up) nor return while a writer runs.
func TestWaitWritersWhileStanzasArrive(t *testing.T) {
	c, cc := newCountConn(t, 1<<20)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.enqueue([]byte("<message/>"), false)
				runtime.Gosched()
			}
		})
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for rounds := 0; time.Now().Before(deadline) || rounds < 1000; rounds++ {
		c.waitWriters()
	}
	close(stop)
	wg.Wait()
	c.waitWriters()
	if c.writing() {
		t.Fatal("a writer runs after waitWriters returned with nothing queued")
	}
	if cc.writes.Load() == 0 {
		t.Fatal("nothing was written")
	}
}

// TestCloseQueuedBeforeSeenClosed: a session goroutine that sees its
// connection closed and ends (finish: waitWriters, then the socket's
// close) finds the closing stream error queued and written, never a queue
// still empty: otherwise the client sees the connection drop mid-stream
// (CI saw an admin kick arrive as a bare EOF).
func TestCloseQueuedBeforeSeenClosed(t *testing.T) {
	for i := range 2000 {
		c, cc := newCountConn(t, 64)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Close("policy-violation", "kicked")
		}()
		for !c.closed.Load() {
			runtime.Gosched()
		}
		c.waitWriters()
		if cc.bytes.Load() == 0 {
			t.Fatalf("round %d: closed, writers waited for, and nothing written", i)
		}
		<-done
	}
}
