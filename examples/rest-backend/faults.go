package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fault modes, set with PUT /_admin/fault {"mode": …}.
const (
	faultNone      = ""
	faultError     = "500"       // answer 500
	faultTimeout   = "timeout"   // answer nothing until the caller gives up (or delay passes)
	faultMalformed = "malformed" // answer 200 with a body no parser accepts
	faultOversized = "oversized" // answer 200 with a body of size bytes
	// faultClose drops the connection without handling the request, as a
	// crashing service or a proxy resetting it does.
	faultClose = "close"
	// faultLost handles the request (a write is applied) and then drops
	// the connection without answering: the caller cannot know that it
	// succeeded, the case idempotent writes exist for.
	faultLost = "lost"
)

// fault is the admin endpoint's request body.
type fault struct {
	Mode string `json:"mode"`
	// Times is how many requests the fault hits; 0 means until reset.
	Times int `json:"times,omitempty"`
	// Bytes is the size of an oversized answer (default 1 MiB).
	Bytes int `json:"bytes,omitempty"`
	// Delay bounds a timeout (default 30s), e.g. "200ms".
	Delay string `json:"delay,omitempty"`
}

// faults makes the service misbehave on purpose, for tests.
type faults struct {
	mu    sync.Mutex
	f     fault
	delay time.Duration
}

func (s *server) setFault(w http.ResponseWriter, r *http.Request) {
	var f fault
	if !readJSON(w, r, &f) {
		return
	}
	delay := 30 * time.Second
	if f.Delay != "" {
		d, err := time.ParseDuration(f.Delay)
		if err != nil {
			writeError(w, http.StatusBadRequest, "delay: "+err.Error())
			return
		}
		delay = d
	}
	switch f.Mode {
	case faultNone, faultError, faultTimeout, faultMalformed, faultOversized, faultClose, faultLost:
	default:
		writeError(w, http.StatusBadRequest, "unknown mode "+f.Mode)
		return
	}
	s.faults.mu.Lock()
	s.faults.f, s.faults.delay = f, delay
	s.faults.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// take returns the fault that hits the current request, if any.
func (fs *faults) take() (fault, time.Duration) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.f
	if f.Mode != faultNone && f.Times > 0 {
		fs.f.Times--
		if fs.f.Times == 0 {
			fs.f = fault{}
		}
	}
	return f, fs.delay
}

// inject answers the request badly if a fault is set, and says so.
// handle serves the request, for the faults that let it through.
func (fs *faults) inject(w http.ResponseWriter, r *http.Request, handle http.Handler) bool {
	f, delay := fs.take()
	switch f.Mode {
	case faultClose:
		io.Copy(io.Discard, r.Body)
		hangUp(w)
	case faultLost:
		handle.ServeHTTP(discard{}, r)
		hangUp(w)
	case faultError:
		writeError(w, http.StatusInternalServerError, "injected failure")
	case faultTimeout:
		// Read the body first: the server notices a caller that hung up
		// (and cancels r.Context()) only once the body is consumed.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(delay):
		}
		writeError(w, http.StatusGatewayTimeout, "injected timeout")
	case faultMalformed:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"version": "1", "items": [`))
	case faultOversized:
		n := f.Bytes
		if n <= 0 {
			n = 1 << 20
		}
		w.Header().Set("Content-Type", "application/json")
		// A valid JSON string, so only its size is wrong.
		json.NewEncoder(w).Encode(strings.Repeat("x", n))
	default:
		return false
	}
	return true
}

// hangUp closes the request's connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack: aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// discard is a ResponseWriter that throws the answer away.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
