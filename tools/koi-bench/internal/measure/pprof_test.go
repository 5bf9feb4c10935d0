package measure

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"runtime"
	"testing"
)

// A real net/http/pprof endpoint, as koi serves it (server.pprof).
func TestPprofGoroutinesAndMemStats(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	p := &Pprof{Base: srv.URL}
	ctx := context.Background()

	stop := make(chan struct{})
	defer close(stop)
	// A first request sets up the keep-alive connection: the goroutine
	// net/http dials it on may still run while it answers, and be gone by
	// the next one, which then counts one fewer.
	if _, err := p.Goroutines(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := p.Goroutines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		go func() { <-stop }()
	}
	after, err := p.Goroutines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 10 || after > runtime.NumGoroutine()+5 {
		t.Fatalf("goroutines %d then %d after starting 10 (runtime says %d)", before, after, runtime.NumGoroutine())
	}

	gcs := func() uint32 { var m runtime.MemStats; runtime.ReadMemStats(&m); return m.NumForcedGC }
	n := gcs()
	ms, err := p.MemStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ms["HeapAlloc"] <= 0 || ms["Stack"] <= 0 {
		t.Fatalf("MemStats = %v: no HeapAlloc or Stack", ms)
	}
	if gcs() == n {
		t.Fatal("MemStats did not make the server collect garbage first")
	}
}
