package server

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/blocking"
	"github.com/koi-im/koi/core/c2s"
	"github.com/koi-im/koi/core/cluster"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
)

// joinCluster makes this koi a node of the cluster cc configures, if any
// (nil when not), and returns what leaves it: after the listeners closed,
// so that the sessions' removals reach the registry.
func joinCluster(ctx context.Context, cc config.Cluster, rt *router.Router, mods *modules.Server, blk *blocking.Module, log hclog.Logger) (cl *cluster.Cluster, leave func(context.Context), err error) {
	if !cc.On() {
		return nil, func(context.Context) {}, nil
	}
	cl = cluster.New(cluster.Config{URL: cc.NATSURL, Node: cc.Node, Lease: cc.Lease, Name: cc.Name, OutboxMax: int(cc.OutboxMaxSize)}, log, rt, mods)
	// The per-user caches every node keeps: a change on one node is
	// announced to the others before its client hears of it.
	cl.OnChange("roster", mods.ForgetRoster)
	mods.OnRosterWrite(func(owner jid.JID) { cl.Changed(context.Background(), "roster", owner) })
	cl.OnChange("blocklist", blk.Refresh)
	blk.OnChange(func(ctx context.Context, owner jid.JID) { cl.Changed(ctx, "blocklist", owner) })
	if err := cl.Start(ctx); err != nil {
		return nil, nil, err
	}
	return cl, cl.Stop, nil
}

// smCluster is cl for stream management: nil (no cluster) must be a nil
// interface, not a nil *cluster.Cluster in one.
func smCluster(cl *cluster.Cluster) c2s.SMCluster {
	if cl == nil {
		return nil
	}
	return cl
}

// serveHandovers lets the other nodes take over srv's resumable sessions.
func serveHandovers(ctx context.Context, cl *cluster.Cluster, srv *c2s.Server) error {
	if cl == nil {
		return nil
	}
	return cl.ServeHandovers(ctx, srv)
}
