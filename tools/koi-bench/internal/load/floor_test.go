package load

import (
	"context"
	"net"
	"testing"
	"time"
)

// The floor's messages all arrive through the relay, each pair's to its
// own receiver, and are measured after the warm-up only.
func TestFloorThroughTheRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Relay(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Relay: %v", err)
		}
	}()
	r, err := Floor(ctx, FloorParams{Addr: ln.Addr().String(), Pairs: 4, Rate: 400, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// 400/s for 0.5 s: 200 measured, give or take the pacing's edges.
	if n := r.Latency.Count; n < 190 || n > 210 {
		t.Errorf("measured %d messages, want about 200", n)
	}
	if r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 {
		t.Errorf("latency %+v", r.Latency)
	}
}

func TestFloorNeedsARelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Floor(t.Context(), FloorParams{Addr: addr, Pairs: 1, Rate: 10, Duration: time.Second}); err == nil {
		t.Error("Floor without a relay succeeded")
	}
	if _, err := Floor(t.Context(), FloorParams{Addr: addr}); err == nil {
		t.Error("Floor with no pairs, rate or duration succeeded")
	}
}
