package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	"github.com/coder/websocket"
)

// dialWSFrom opens a WebSocket from the local address from and returns
// the dial error (nil on success).
func dialWSFrom(t *testing.T, from, url string, tlsCfg *tls.Config) (*wsClient, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: tlsCfg}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &wsClient{t: t, ws: ws}, nil
}

// TestWebSocketLimitsAndKeepalive: a WebSocket listener has the c2s
// listeners' per-address connection rate (counted before TLS and HTTP,
// over wss too) and its own keepalive policy: with keepalive = "ping" a
// silent client gets an XEP-0199 ping.
func TestWebSocketLimitsAndKeepalive(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.WebSocket, opt.WebSocketTLS = freeAddr(t), true
	opt.WebSocketExtra = `keepalive = "ping"  keepalive_interval = "1s"`
	opt.ConnectionsPerIP = 2
	s := startServer(t, opt)
	s.waitListening(t, opt.WebSocket)
	s.addUser(t, "ivy@localhost", "pw-ivy")
	tlsCfg := s.tlsConfig(t, "localhost")
	url := "wss://" + opt.WebSocket + "/xmpp-websocket"

	// 127.0.0.3 has not connected yet: two connections, then refused.
	c, err := dialWSFrom(t, "127.0.0.3", url, tlsCfg)
	if err != nil {
		t.Fatalf("first WebSocket: %v", err)
	}
	if _, err := dialWSFrom(t, "127.0.0.3", url, tlsCfg); err != nil {
		t.Fatalf("second WebSocket: %v", err)
	}
	if _, err := dialWSFrom(t, "127.0.0.3", url, tlsCfg); err == nil {
		t.Fatal("a third WebSocket from one address within the window was accepted (connections_per_ip = 2)")
	}
	// Another address is not affected.
	if _, err := dialWSFrom(t, "127.0.0.4", url, tlsCfg); err != nil {
		t.Fatalf("another address refused: %v", err)
	}

	c.open()
	c.loginSCRAM("ivy", "pw-ivy", "web")
	ping := c.expect("a keepalive ping over the silent WebSocket", func(e *element) bool {
		return e.is(nsClient, "iq") && e.attr("type") == "get" && e.child(nsPing, "ping") != nil
	})
	c.send("<iq xmlns='jabber:client' type='result' id='" + ping.attr("id") + "' to='" + ping.attr("from") + "'/>")
	s.waitLog(t, `connection refused: remote=127.0.0.3`)
}
