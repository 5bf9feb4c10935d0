// Command rest-backend is the reference implementation of the web service
// koi's http plugin (plugins/http) calls: the HTTP auth contract of
// Prosody's mod_auth_http and MongooseIM's ejabberd_auth_http, and koi's
// JSON contract for rosters and the message archive
// (plugins/http/openapi.yaml), over SQLite.
//
//	rest-backend -listen 127.0.0.1:8480 -db rest.db [-token T | -basic-auth u:p] [-hmac-secret S] [-pprof ADDR]
//
// It is an example to copy from and a test double: PUT /_admin/fault makes
// it misbehave on purpose (see faults.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// defaultSkew is how far a signed request's timestamp may be from our clock.
const defaultSkew = 5 * time.Minute

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "rest-backend: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("rest-backend", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8480", "address to listen on")
	dbPath := fs.String("db", "rest-backend.db", "SQLite database file")
	var opts options
	fs.StringVar(&opts.token, "token", "", "require this bearer token")
	fs.StringVar(&opts.basicAuth, "basic-auth", "", "require these basic credentials (user:password)")
	fs.StringVar(&opts.hmacSecret, "hmac-secret", "", "require requests signed with this secret")
	fs.DurationVar(&opts.maxSkew, "hmac-max-skew", defaultSkew, "accept signed requests this far from our clock")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler on this address (host:port; off by default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := openStore(*dbPath)
	if err != nil {
		return err
	}
	defer st.close()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := &http.Server{Addr: *listen, Handler: newServer(st, opts, log), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if *pprofAddr != "" {
		// Its own listener, never the service's: the profiler is for
		// whoever runs the benchmark, not for the service's callers.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		ps := &http.Server{Addr: *pprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := ps.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				log.Error("pprof listener", "address", *pprofAddr, "error", err)
			}
		}()
		defer ps.Close()
	}
	log.Info("listening", "address", *listen, "db", *dbPath)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
