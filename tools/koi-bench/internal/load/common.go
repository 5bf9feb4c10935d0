// Package load runs koi-bench's workloads against an XMPP server: user
// creation, idle sessions, logins and message traffic. Each workload
// returns a result that says what was measured and what it cost the
// server and the tool.
package load

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/client"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
)

// Env is what every workload needs.
type Env struct {
	Dialer *client.Dialer
	Users  Users
	// Target is the server process (CPU and memory readings); never nil,
	// but may be empty (PID 0) for a remote server.
	Target *measure.Target
	// Pprof, if not nil, is the server's Go profiler: CPU profiles are
	// saved during measurements and memory statistics read.
	Pprof *measure.Pprof
	// Progress receives one line a second while a workload runs; nil for
	// none.
	Progress io.Writer
}

// Users names the benchmark accounts: Prefix followed by a number, all
// with the same password.
type Users struct {
	Prefix   string
	Password string
}

// Name returns the local part of user i.
func (u Users) Name(i int) string { return u.Prefix + strconv.Itoa(i) }

// Common is what every result carries.
type Common struct {
	Mode      string    `json:"mode"`
	Label     string    `json:"label,omitempty"`
	Server    string    `json:"server"`
	Domain    string    `json:"domain"`
	TLS       bool      `json:"tls"`
	Mechanism string    `json:"mechanism,omitempty"`
	Started   time.Time `json:"started"`
	// Errors counts failed operations; FirstError describes the first.
	Errors     uint64 `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// Notes are remarks for the reader: the tool was the bottleneck, a
	// profile was saved, ...
	Notes []string `json:"notes,omitempty"`
}

func (e *Env) common(mode string) Common {
	o := e.Dialer.Options()
	return Common{Mode: mode, Server: o.Addr, Domain: o.Domain, TLS: o.TLS == client.TLSDirect || o.TLS == client.TLSStartTLS, Mechanism: o.Mechanism, Started: time.Now().UTC()}
}

// errorLog counts errors and keeps the first.
type errorLog struct {
	n     atomic.Uint64
	mu    sync.Mutex
	first error
}

func (l *errorLog) add(err error) {
	if l.n.Add(1) == 1 {
		l.mu.Lock()
		l.first = err
		l.mu.Unlock()
	}
}

func (l *errorLog) fill(c *Common) {
	c.Errors = l.n.Load()
	l.mu.Lock()
	if l.first != nil {
		c.FirstError = l.first.Error()
	}
	l.mu.Unlock()
}

// progress prints line() every second until the returned stop is called.
func (e *Env) progress(mode string, line func() string) (stop func()) {
	if e.Progress == nil {
		return func() {}
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(e.Progress, "[%s %3.0fs] %s\n", mode, time.Since(start).Seconds(), line())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// cpuMeter turns consecutive CPU readings into the utilisation of the
// last interval, for progress lines.
type cpuMeter struct {
	t                 *measure.Target
	at                time.Time
	srv, child, local time.Duration
}

func newCPUMeter(t *measure.Target) *cpuMeter {
	m := &cpuMeter{t: t, at: time.Now(), local: measure.SelfCPU()}
	m.srv, m.child = t.CPU()
	return m
}

// line returns "koi 97% plugin 3% tool 45%" for the time since the last
// call.
func (m *cpuMeter) line() string {
	now := time.Now()
	wall := now.Sub(m.at).Seconds()
	srv, child := m.t.CPU()
	local := measure.SelfCPU()
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall }
	s := ""
	if m.t.Known() {
		s = fmt.Sprintf("server %3.0f%% plugins %3.0f%% ", pct(srv-m.srv), pct(child-m.child))
	}
	s += fmt.Sprintf("tool %3.0f%%", pct(local-m.local))
	m.at, m.srv, m.child, m.local = now, srv, child, local
	return s
}

// forEach runs fn(i) for i in [0, n) on c goroutines and stops early when
// ctx is done.
func forEach(ctx context.Context, n, c int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(c, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// profileCPU saves a CPU profile of the server over d, if a profiler is
// configured, in the background; wait returns a note on the outcome.
func (e *Env) profileCPU(ctx context.Context, d time.Duration, name string) (wait func() string) {
	if e.Pprof == nil || e.Pprof.Dir == "" || d < time.Second {
		return func() string { return "" }
	}
	ch := make(chan string, 1)
	go func() {
		path := fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds()))
		f, err := e.Pprof.Save(ctx, path, name)
		if err != nil {
			ch <- "server CPU profile failed: " + err.Error()
			return
		}
		ch <- "server CPU profile: " + f
	}()
	return func() string { return <-ch }
}

func kib(b int64) float64 { return float64(b) / 1024 }

func selfPID() int { return os.Getpid() }

func tlsName(on bool) string {
	if on {
		return "tls"
	}
	return "plaintext"
}

// loopback reports whether addr is on this machine's loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// cpuNotes adds the notes every measured run may carry: where its server
// profile went, whether other load disturbed it, whether the tool (what
// it measured is then a lower bound) was the bottleneck.
func cpuNotes(notes []string, profileNote string, cpu measure.CPUReport, what string) []string {
	if profileNote != "" {
		notes = append(notes, profileNote)
	}
	if d := cpu.Disturbed(); d != "" {
		notes = append(notes, d)
	}
	if cpu.ToolBound {
		notes = append(notes, "koi-bench used all its CPU: "+what+" is a lower bound of the server's")
	}
	return notes
}
