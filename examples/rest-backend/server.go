package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxRequestBytes bounds a request body (an archive batch is the largest).
const maxRequestBytes = 64 << 20

// options are the credentials the service requires of its caller.
type options struct {
	token      string
	basicAuth  string
	hmacSecret string
	maxSkew    time.Duration
}

// server is the service: the contract's handlers behind the caller's
// authentication and the fault switches.
type server struct {
	st     *store
	mux    *http.ServeMux
	opts   options
	log    *slog.Logger
	faults *faults

	mu   sync.Mutex
	hits map[string]int // requests per route pattern, for /_admin/requests
}

func newServer(st *store, opts options, log *slog.Logger) *server {
	s := &server{st: st, mux: http.NewServeMux(), opts: opts, log: log, faults: &faults{}, hits: map[string]int{}}
	s.routes(s.mux)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.authenticate(r); err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	_, pattern := s.mux.Handler(r)
	s.mu.Lock()
	s.hits[pattern]++
	s.mu.Unlock()
	if !strings.HasPrefix(r.URL.Path, "/_admin/") && s.faults.inject(w, r, s.mux) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *server) routes(mux *http.ServeMux) {
	// The auth contract: any method, parameters in the query or a form.
	for _, m := range []string{"check_password", "user_exists", "register", "set_password", "remove_user"} {
		mux.HandleFunc("/"+m, s.authMethod(m))
	}
	mux.HandleFunc("GET /list_users", s.listUsers)

	mux.HandleFunc("GET /roster/{owner}", s.getRoster)
	mux.HandleFunc("DELETE /roster/{owner}", s.deleteRoster)
	mux.HandleFunc("PUT /roster/{owner}/items/{contact}", s.setItem)
	mux.HandleFunc("DELETE /roster/{owner}/items/{contact}", s.deleteItem)
	mux.HandleFunc("PUT /roster/{owner}/pending/{contact}", s.setPending)
	mux.HandleFunc("DELETE /roster/{owner}/pending/{contact}", s.deletePending)
	mux.HandleFunc("POST /roster_changes", s.applyRosterChanges)

	mux.HandleFunc("POST /archive/messages", s.appendArchive)
	mux.HandleFunc("POST /archive/{owner}/query", s.queryArchive)
	mux.HandleFunc("DELETE /archive/{owner}", s.deleteArchive)
	mux.HandleFunc("PUT /archive/{owner}/messages/{stanza_id}", s.retractArchived)
	mux.HandleFunc("GET /archive/{owner}/prefs", s.getPrefs)
	mux.HandleFunc("PUT /archive/{owner}/prefs", s.setPrefs)

	mux.HandleFunc("PUT /_admin/fault", s.setFault)
	mux.HandleFunc("GET /_admin/requests", s.requests)
}

// authenticate checks the caller's credentials as configured: a bearer
// token or basic credentials, and an HMAC signature.
func (s *server) authenticate(r *http.Request) error {
	switch {
	case s.opts.token != "":
		if !equal(r.Header.Get("Authorization"), "Bearer "+s.opts.token) {
			return errors.New("bad or missing bearer token")
		}
	case s.opts.basicAuth != "":
		u, p, _ := r.BasicAuth()
		if !equal(u+":"+p, s.opts.basicAuth) {
			return errors.New("bad or missing basic credentials")
		}
	}
	if s.opts.hmacSecret == "" {
		return nil
	}
	ts := r.Header.Get("X-Koi-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("missing X-Koi-Timestamp")
	}
	if d := time.Since(time.Unix(sec, 0)); d > s.opts.maxSkew || d < -s.opts.maxSkew {
		return errors.New("X-Koi-Timestamp too far from our clock")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRequestBytes))
	if err != nil {
		return errors.New("reading the body: " + err.Error())
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	m := hmac.New(sha256.New, []byte(s.opts.hmacSecret))
	io.WriteString(m, r.Method+"\n"+r.URL.RequestURI()+"\n"+ts+"\n")
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	if !equal(r.Header.Get("X-Koi-Signature"), want) {
		return errors.New("bad X-Koi-Signature")
	}
	return nil
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *server) requests(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.hits)
}

// hitCount returns how many requests reached pattern.
func (s *server) hitCount(pattern string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[pattern]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, text)
}

// readJSON decodes a request body, refusing unknown members.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return false
	}
	return true
}

// internal answers a storage failure.
func (s *server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}
