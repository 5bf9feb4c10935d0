package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
)

// The latency floor: msg's fixed-rate latency with no XMPP server, only a
// relay that copies each sender's bytes to its receiver. It is what the
// machine itself (loopback TCP, the scheduler, timers, the hypervisor)
// adds to every message at that rate, so a server's p99 can be read
// against it: a target below the floor cannot be met on that machine.

// floorFrame is the size of one relayed message, about that of msg's
// stanzas with its default body.
const floorFrame = 256

// Relay accepts connections on ln until ctx ends. Each connection first
// sends its number (4 bytes, big-endian); the bytes of connection 2k are
// then copied to connection 2k+1.
func Relay(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var mu sync.Mutex
	receivers := map[uint32]chan net.Conn{}
	receiver := func(id uint32) chan net.Conn {
		mu.Lock()
		defer mu.Unlock()
		if receivers[id] == nil {
			receivers[id] = make(chan net.Conn, 1)
		}
		return receivers[id]
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			var hdr [4]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				c.Close()
				return
			}
			id := binary.BigEndian.Uint32(hdr[:])
			if id%2 == 1 {
				receiver(id) <- c
				return
			}
			var dst net.Conn
			select {
			case dst = <-receiver(id + 1):
			case <-ctx.Done():
				c.Close()
				return
			}
			defer c.Close()
			defer dst.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// FloorParams configure Floor.
type FloorParams struct {
	Addr     string // the relay
	Pairs    int
	Rate     float64 // messages/s in all
	Warmup   time.Duration
	Duration time.Duration
}

// FloorResult is the latency through the relay.
type FloorResult struct {
	Pairs   int             `json:"pairs"`
	Rate    float64         `json:"rate"`
	Latency measure.Summary `json:"latency"`
}

// Floor paces Pairs senders through the relay at Rate messages/s in all,
// each evenly like msg's sendRate, and measures the latency of the
// messages sent after Warmup.
func Floor(ctx context.Context, p FloorParams) (*FloorResult, error) {
	if p.Pairs <= 0 || p.Rate <= 0 || p.Duration <= 0 {
		return nil, errors.New("floor: -pairs, -rate and -duration must be positive")
	}
	base := time.Now()
	now := func() int64 { return int64(time.Since(base)) }
	interval := time.Duration(float64(p.Pairs) / p.Rate * float64(time.Second))
	var d net.Dialer
	type pair struct{ s, r net.Conn }
	pairs := make([]pair, p.Pairs)
	defer func() {
		for _, pr := range pairs {
			if pr.s != nil {
				pr.s.Close()
			}
			if pr.r != nil {
				pr.r.Close()
			}
		}
	}()
	for i := range pairs {
		for k, c := range []*net.Conn{&pairs[i].s, &pairs[i].r} {
			nc, err := d.DialContext(ctx, "tcp", p.Addr)
			if err != nil {
				return nil, fmt.Errorf("floor: %w", err)
			}
			*c = nc
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], uint32(2*i+k))
			if _, err := nc.Write(hdr[:]); err != nil {
				return nil, fmt.Errorf("floor: %w", err)
			}
		}
	}
	// Cancelling ends the receivers' reads too.
	defer context.AfterFunc(ctx, func() {
		for _, pr := range pairs {
			pr.s.Close()
			pr.r.Close()
		}
	})()
	start := now() + int64(100*time.Millisecond)
	from, until := start+int64(p.Warmup), start+int64(p.Warmup+p.Duration)
	hists := make([]measure.Histogram, p.Pairs)
	var wg sync.WaitGroup
	errs := make(chan error, 2*p.Pairs)
	for i, pr := range pairs {
		wg.Add(2)
		go func() { // receiver
			defer wg.Done()
			buf := make([]byte, floorFrame)
			for {
				if _, err := io.ReadFull(pr.r, buf); err != nil {
					errs <- fmt.Errorf("floor: receiver %d: %w", i, err)
					return
				}
				ts := int64(binary.BigEndian.Uint64(buf))
				if ts < 0 {
					return // the last one
				}
				if ts >= from {
					hists[i].Record(time.Duration(now() - ts))
				}
			}
		}()
		go func() { // sender
			defer wg.Done()
			buf := make([]byte, floorFrame)
			next := start + int64(interval)*int64(i)/int64(p.Pairs)
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			for {
				if d := next - now(); d > 0 {
					t.Reset(time.Duration(d))
					select {
					case <-t.C:
					case <-ctx.Done():
						return
					}
				}
				ts := now()
				if ts >= until {
					ts = -1
				}
				binary.BigEndian.PutUint64(buf, uint64(ts))
				if _, err := pr.s.Write(buf); err != nil {
					errs <- fmt.Errorf("floor: sender %d: %w", i, err)
					return
				}
				if ts < 0 {
					return
				}
				next += int64(interval)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	var all measure.Histogram
	for i := range hists {
		all.Merge(&hists[i])
	}
	return &FloorResult{Pairs: p.Pairs, Rate: p.Rate, Latency: all.Summarize()}, nil
}
