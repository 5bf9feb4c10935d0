package server

import (
	"context"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/c2s"
	"github.com/koi-im/koi/core/cluster"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/metrics"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/pluginhost"
)

// newMetrics returns the registry for block metrics, nil when neither it
// nor the admin listener (whose page graphs the same counters) is on.
// The plugins report to it from their start, so it exists before them.
func newMetrics(cfg config.Metrics, admin bool, ph *pluginhost.Host) *metrics.Registry {
	if cfg.Address == "" && !admin {
		return nil
	}
	reg := metrics.New()
	ph.SetObserver(reg)
	return reg
}

// startMetrics serves the Prometheus endpoint, if configured, and returns
// the observer the c2s server reports to, nil when there is no registry. The listener is bound
// here, so a taken port stops the start-up with an error naming the key
// rather than a log line later.
func startMetrics(ctx context.Context, reg *metrics.Registry, cfg config.Metrics, hosts func() []*modules.Host, log hclog.Logger) (c2s.Observer, error) {
	if reg == nil {
		return nil, nil
	}
	err := reg.GaugeFunc("koi_archive_queue_depth", "Archive writes queued or in flight, summed over the hosts.", func() float64 {
		n := 0
		for _, h := range hosts() {
			if !h.Archive.On || h.Archive.Backend == nil || h.Archive.Backend.Writer == nil {
				continue
			}
			n += h.Archive.Backend.Writer.Stats().Pending
		}
		return float64(n)
	})
	if err != nil {
		return nil, err
	}
	if cfg.Address == "" {
		return reg, nil // counted for the admin page only
	}
	l, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("metrics.address: %w", err)
	}
	log.Info("metrics listening", "address", l.Addr().String(), "path", cfg.Path)
	go func() {
		if err := reg.Serve(ctx, l, cfg.Path); err != nil {
			log.Error("metrics listener failed", "error", err)
		}
	}()
	return reg, nil
}

// exportParked adds the gauge of idle client sessions parked without a
// goroutine: with koi_connections_open it shows how many wait cheaply.
func exportParked(reg *metrics.Registry, srv *c2s.Server) error {
	if reg == nil {
		return nil
	}
	return reg.GaugeFunc("koi_c2s_parked_sessions", "Idle client sessions waiting without a goroutine of their own.", func() float64 {
		return float64(srv.ParkedSessions())
	})
}

// exportCluster adds the gauges of this node's part in the cluster, if it
// is in one: a partition shows as a node fewer and unacknowledged bytes
// climbing towards cluster.outbox_max_size, then as forwards handed back.
func exportCluster(reg *metrics.Registry, cl *cluster.Cluster) error {
	if reg == nil || cl == nil {
		return nil
	}
	for _, m := range []struct {
		name, help string
		value      func(cluster.Stats) float64
	}{
		{"koi_cluster_nodes_alive", "Other cluster nodes whose heartbeats arrive within the lease.",
			func(s cluster.Stats) float64 { return float64(s.Nodes) }},
		{"koi_cluster_remote_sessions", "Client sessions on other nodes, as this node routes to them.",
			func(s cluster.Stats) float64 { return float64(s.RemoteSessions) }},
		{"koi_cluster_forwards_unacknowledged", "Stanzas forwarded to other nodes and not yet acknowledged.",
			func(s cluster.Stats) float64 { return float64(s.Unacknowledged) }},
		{"koi_cluster_forwards_unacknowledged_bytes", "Size of the stanzas forwarded to other nodes and not yet acknowledged.",
			func(s cluster.Stats) float64 { return float64(s.UnacknowledgedBytes) }},
		{"koi_cluster_handback_queue_bytes", "Size of the forwards handed back as undelivered and not yet stored.",
			func(s cluster.Stats) float64 { return float64(s.HandBackBytes) }},
	} {
		if err := reg.GaugeFunc(m.name, m.help, func() float64 { return m.value(cl.Stats()) }); err != nil {
			return err
		}
	}
	return reg.CounterFunc("koi_cluster_forwards_handed_back_total",
		"Forwards another node never answered for (dead, cut off, or dropped by NATS), handled as undelivered.",
		func() float64 { return float64(cl.Stats().HandedBack) })
}
