package server

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/cluster"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
)

// joinCluster makes this koi a node of the cluster cc configures, if any
// (nil when none), and returns what leaves it: after the listeners closed,
// so that the sessions' removals reach the registry.
func joinCluster(ctx context.Context, cc config.Cluster, rt *router.Router, mods *modules.Server, log hclog.Logger) (cl *cluster.Cluster, leave func(context.Context), err error) {
	if !cc.On() {
		return nil, func(context.Context) {}, nil
	}
	cl = cluster.New(cluster.Config{URL: cc.NATSURL, Node: cc.Node, Lease: cc.Lease, Name: cc.Name}, log, rt, mods)
	mods.OnRosterWrite(cl.RosterWritten)
	if err := cl.Start(ctx); err != nil {
		return nil, nil, err
	}
	return cl, cl.Stop, nil
}
