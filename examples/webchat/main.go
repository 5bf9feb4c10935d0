// Command webchat serves Converse.js, a web XMPP client, pointed at koi's
// WebSocket listener (RFC 7395), so that a browser user can chat on koi.
//
// Converse.js comes from the npm package converse.js (npm ci in this
// directory, see README.md). Converse loads its other files (chunks, the
// OMEMO wasm, fonts, sounds) relative to the page, so its dist directory is
// served at the root, next to the page.
//
//	webchat -listen 127.0.0.1:8080 -websocket ws://127.0.0.1:5280/xmpp-websocket -domain localhost
//
// koi must allow the page's origin: listen "websocket" { origins =
// ["127.0.0.1:8080"] } (the page and the WebSocket differ in port, so they
// are different origins to the browser).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "webchat:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("webchat", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address the page is served on")
	ws := fs.String("websocket", "ws://127.0.0.1:5280/xmpp-websocket", "URL of koi's WebSocket listener")
	domain := fs.String("domain", "localhost", "XMPP domain users log in to (user names without @domain get it)")
	dist := fs.String("dist", "node_modules/converse.js/dist", "Converse.js dist directory (from npm ci)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, err := NewHandler(Config{WebSocketURL: *ws, Domain: *domain, Dist: *dist})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	// The test harness and users wait for this line.
	log.Info("webchat listening", "url", "http://"+l.Addr().String()+"/", "websocket", *ws, "domain", *domain)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
