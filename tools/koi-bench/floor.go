package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/load"
)

// runFloor runs the relay, or measures the latency floor through one.
func runFloor(ctx context.Context, mode string, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	if mode == "relay" {
		listen := fs.String("listen", "127.0.0.1:5299", "`host:port` to listen on")
		if err := fs.Parse(args); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		return load.Relay(ctx, ln)
	}
	var p load.FloorParams
	fs.StringVar(&p.Addr, "addr", "127.0.0.1:5299", "the relay's `host:port`")
	fs.IntVar(&p.Pairs, "pairs", 500, "sender and receiver pairs")
	fs.Float64Var(&p.Rate, "rate", 5000, "messages/s in all")
	fs.DurationVar(&p.Warmup, "warmup", 2*time.Second, "messages sent before this are not measured")
	fs.DurationVar(&p.Duration, "duration", 10*time.Second, "measured sending time")
	jsonFile := fs.String("json", "", "also write the result as JSON to `file`")
	label := fs.String("label", "latency floor", "name of this run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := load.Floor(ctx, p)
	if err != nil {
		return err
	}
	l := r.Latency
	fmt.Fprintf(stdout, "%s (a byte relay, no XMPP), %d pairs at %.0f/s: p50 %.3fms p99 %.3fms p99.9 %.3fms max %.3fms (%d msgs)\n",
		*label, r.Pairs, r.Rate, l.P50, l.P99, l.P999, l.Max, l.Count)
	if *jsonFile != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(*jsonFile, append(b, '\n'), 0o644)
	}
	return nil
}
