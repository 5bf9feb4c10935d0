package load

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/client"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
)

// IdleParams shape the idle-sessions workload.
type IdleParams struct {
	Sessions    int // how many to hold, one user each: users [0, Sessions)
	Concurrency int // logins in flight while opening
	// Available: send initial presence, as a real client does.
	Available bool
	// Settle is how long to wait, all sessions open and each having sent
	// one whitespace keepalive (over KeepaliveSpread), before reading the
	// server's memory.
	Settle time.Duration
	// Hold keeps the sessions open this much longer (whitespace keepalives
	// are sent every 60 s) before the liveness check.
	Hold time.Duration
	// Detach enables resumable stream management (XEP-0198) on each
	// session and then resets its TCP connection: the server keeps the
	// session, detached, waiting for a resumption. What is measured is then
	// the memory of a detached session.
	Detach bool
	// Keepalive: each session sends one whitespace keepalive (in waves,
	// over KeepaliveSpread) before the settle, as clients do.
	Keepalive bool
}

// IdleResult reports memory per idle session.
type IdleResult struct {
	Common
	Sessions int `json:"sessions"` // requested
	Opened   int `json:"opened"`
	// Alive answered a ping at the end.
	Alive       int     `json:"alive"`
	OpenSeconds float64 `json:"open_seconds"`
	// OpenCPU is the CPU cost of opening the sessions (logins).
	OpenCPU measure.CPUReport `json:"open_cpu"`

	ServerBefore measure.Memory `json:"server_before"`
	ServerAfter  measure.Memory `json:"server_after"`
	PluginBefore measure.Memory `json:"plugin_before"`
	PluginAfter  measure.Memory `json:"plugin_after"`
	// Per session, in KiB: (after - before) / opened.
	RSSPerSessionKiB    float64 `json:"rss_per_session_kib"`
	PSSPerSessionKiB    float64 `json:"pss_per_session_kib"`
	PluginPerSessionKiB float64 `json:"plugin_per_session_kib"`
	// From the Go runtime of the server, when its profiler is reachable
	// (after a forced GC): live heap and goroutine stacks per session.
	HeapPerSessionKiB  float64 `json:"heap_per_session_kib,omitempty"`
	StackPerSessionKiB float64 `json:"stack_per_session_kib,omitempty"`
	// GoroutinesPerSession is the server's goroutines per open session.
	GoroutinesPerSession float64 `json:"goroutines_per_session,omitempty"`
	// RSSAfterGCPerSessionKiB is the RSS per session read again a few
	// seconds after the forced GC, once the runtime had time to return
	// what the collection freed (and the stacks it shrank) to the system.
	RSSAfterGCPerSessionKiB float64 `json:"rss_after_gc_per_session_kib,omitempty"`
	// KernelPerConnKiB estimates the kernel memory (slab and TCP buffers)
	// of one connection end, from the machine-wide change divided by
	// twice the sessions (a loopback connection has both ends here).
	KernelPerConnKiB float64 `json:"kernel_per_conn_kib,omitempty"`
	// ToolRSS is koi-bench's own resident memory with the sessions open.
	ToolRSS int64 `json:"tool_rss_bytes"`
	// Detached: the sessions were left detached (IdleParams.Detach); they
	// have no connection to ping, so Alive stays 0.
	Detached bool `json:"detached,omitempty"`
}

// KeepaliveWaves and KeepaliveSpread shape the whitespace keepalives
// that the idle sessions send before their memory is read: clients send
// one every minute or so, not all at once, so they go in waves over the
// spread rather than as one burst that would wake every session together.
const (
	KeepaliveWaves  = 10
	KeepaliveSpread = 10 * time.Second
)

// sendKeepalives has every open session send one whitespace keepalive, as
// clients do: the memory measured is then that of sessions that have had
// one.
func sendKeepalives(ctx context.Context, conns []*client.Conn, errs *errorLog) {
	for w := range KeepaliveWaves {
		for i := w; i < len(conns); i += KeepaliveWaves {
			if c := conns[i]; c != nil {
				if err := c.Keepalive(); err != nil {
					errs.add(fmt.Errorf("session %d: keepalive: %w", i, err))
				}
			}
		}
		select {
		case <-time.After(KeepaliveSpread / KeepaliveWaves):
		case <-ctx.Done():
			return
		}
	}
}

// GCSettle is how long after the forced GC the RSS is read again: the
// runtime returns freed memory to the system in the background.
const GCSettle = 5 * time.Second

// Idle opens p.Sessions sessions, measures the server's memory with them
// open, checks they are still alive and closes them.
func Idle(ctx context.Context, e *Env, p IdleParams) (*IdleResult, error) {
	if p.Sessions <= 0 {
		return nil, errors.New("idle: no sessions asked for")
	}
	if !e.Target.Known() {
		return nil, errors.New("idle: the server's PID is needed to read its memory (-pid)")
	}
	r := &IdleResult{Common: e.common("idle"), Sessions: p.Sessions, Detached: p.Detach}
	var err error
	if r.ServerBefore, r.PluginBefore, err = e.Target.Memory(); err != nil {
		return nil, err
	}
	kernBefore, kernErr := measure.KernelMemory()
	var msBefore map[string]int64
	var gBefore int
	if e.Pprof != nil {
		if msBefore, err = e.Pprof.MemStats(ctx); err != nil {
			r.Notes = append(r.Notes, "reading the server's memory statistics: "+err.Error())
		}
		if gBefore, err = e.Pprof.Goroutines(ctx); err != nil {
			r.Notes = append(r.Notes, "counting the server's goroutines: "+err.Error())
		}
	}

	conns := make([]*client.Conn, p.Sessions)
	var opened atomic.Int64
	var errs errorLog
	cpu := newCPUMeter(e.Target)
	start := time.Now()
	stop := e.progress("idle", func() string {
		m, _, _ := e.Target.Memory()
		n := opened.Load()
		return fmt.Sprintf("open %d/%d (%.0f/s) errors %d, server RSS %.1f MiB | %s",
			n, p.Sessions, float64(n)/time.Since(start).Seconds(), errs.n.Load(), float64(m.RSS)/(1<<20), cpu.line())
	})
	win := e.Target.StartWindow()
	var mech atomic.Value
	var usedTLS atomic.Bool
	forEach(ctx, p.Sessions, p.Concurrency, func(i int) {
		c, err := e.Dialer.Session(ctx, e.Users.Name(i), e.Users.Password, "kb", p.Available)
		if err != nil {
			errs.add(fmt.Errorf("session %d: %w", i, err))
			return
		}
		mech.Store(c.Mechanism())
		usedTLS.Store(c.TLS())
		if p.Detach {
			_, err := c.EnableSM(ctx)
			c.Drop()
			if err != nil {
				errs.add(fmt.Errorf("session %d: %w", i, err))
				return
			}
			opened.Add(1)
			return
		}
		c.Scanner().Release()
		conns[i] = c
		opened.Add(1)
	})
	usage := win.Stop()
	r.OpenSeconds = time.Since(start).Seconds()
	r.Opened = int(opened.Load())
	r.OpenCPU = usage.Report(uint64(r.Opened), true)
	r.TLS = usedTLS.Load()
	if m, ok := mech.Load().(string); ok {
		r.Mechanism = m
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if ctx.Err() != nil {
		stop()
		return nil, ctx.Err()
	}
	if r.Opened == 0 {
		stop()
		errs.fill(&r.Common)
		return r, fmt.Errorf("idle: no session opened: %s", r.FirstError)
	}

	if p.Keepalive {
		sendKeepalives(ctx, conns, &errs)
	}
	select {
	case <-time.After(p.Settle):
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
	if r.ServerAfter, r.PluginAfter, err = e.Target.Memory(); err != nil {
		stop()
		return nil, err
	}
	if kern, err := measure.KernelMemory(); err == nil && kernErr == nil && loopback(e.Dialer.Options().Addr) && !p.Detach {
		r.KernelPerConnKiB = kib(kern-kernBefore) / float64(2*r.Opened)
	}
	if self, err := measure.ReadMemory(selfPID()); err == nil {
		r.ToolRSS = self.RSS
	}
	n := float64(r.Opened)
	r.RSSPerSessionKiB = kib(r.ServerAfter.RSS-r.ServerBefore.RSS) / n
	r.PSSPerSessionKiB = kib(r.ServerAfter.PSS-r.ServerBefore.PSS) / n
	r.PluginPerSessionKiB = kib(r.PluginAfter.RSS-r.PluginBefore.RSS) / n
	if e.Pprof != nil && msBefore != nil {
		// ?gc=1 makes the server collect garbage first, so the heap figure
		// is what the sessions keep alive. Read after the RSS on purpose.
		if e.Pprof.Dir != "" {
			if f, err := e.Pprof.Save(ctx, "/debug/pprof/heap?gc=1", "heap-idle-"+tlsName(r.TLS)+".pb.gz"); err == nil {
				r.Notes = append(r.Notes, "server heap profile: "+f)
			}
		}
		if ms, err := e.Pprof.MemStats(ctx); err == nil {
			r.HeapPerSessionKiB = kib(ms["HeapAlloc"]-msBefore["HeapAlloc"]) / n
			r.StackPerSessionKiB = kib(ms["Stack"]-msBefore["Stack"]) / n
		}
		if g, err := e.Pprof.Goroutines(ctx); err == nil && gBefore > 0 {
			r.GoroutinesPerSession = float64(g-gBefore) / n
		}
		select {
		case <-time.After(GCSettle):
		case <-ctx.Done():
		}
		if m, _, err := e.Target.Memory(); err == nil {
			r.RSSAfterGCPerSessionKiB = kib(m.RSS-r.ServerBefore.RSS) / n
		}
	}

	if p.Hold > 0 {
		select {
		case <-time.After(p.Hold):
		case <-ctx.Done():
		}
	}
	stop()
	// Liveness: every session must still answer.
	var alive atomic.Int64
	forEach(ctx, len(conns), p.Concurrency, func(i int) {
		c := conns[i]
		if c == nil {
			return
		}
		if err := c.Ping(ctx); err != nil {
			errs.add(fmt.Errorf("session %d died while idle: %w", i, err))
			return
		}
		c.Scanner().Release()
		alive.Add(1)
	})
	r.Alive = int(alive.Load())
	errs.fill(&r.Common)
	if r.OpenCPU.Disturbed() != "" {
		r.Notes = append(r.Notes, fmt.Sprintf("other processes used %.2f cores while the sessions opened: the open rate is disturbed (memory figures are not)", r.OpenCPU.OtherCores+r.OpenCPU.StealCores))
	}
	if r.OpenCPU.ToolBound {
		r.Notes = append(r.Notes, "koi-bench used all its CPU while opening sessions: the open rate is the tool's, not the server's")
	}
	return r, nil
}
