package websocket

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pair returns the server side of a WebSocket as a conn, and the client.
func pair(t *testing.T) (*conn, *websocket.Conn) {
	t.Helper()
	ch := make(chan *conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			return
		}
		c := newConn(ws, 1024, addr(r.RemoteAddr), addr(""))
		ch <- c
		<-c.done
	}))
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.CloseNow() })
	c := <-ch
	t.Cleanup(func() { c.abort() })
	return c, client
}

// A whitespace keepalive from c2s becomes a ping, and the client's pong a
// space that c2s reads as traffic.
func TestKeepaliveBecomesPing(t *testing.T) {
	c, client := pair(t)
	// The client answers pings while it reads.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go client.Read(ctx)
	if n, err := c.Write([]byte(" ")); n != 1 || err != nil {
		t.Fatalf("Write(keepalive) = %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != " " {
		t.Fatalf("after the pong c2s read %q, %v; want a space", buf[:n], err)
	}
}

// Read deadlines behave as on a socket: a timeout, and the connection
// still usable after it (c2s's idle check relies on that).
func TestReadDeadline(t *testing.T) {
	c, client := pair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 256)
	_, err := c.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Write(ctx, websocket.MessageText, []byte("<presence/>")); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "<presence/>" {
		t.Fatalf("Read after a timeout: %q, %v", buf[:n], err)
	}
}
