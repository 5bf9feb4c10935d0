package server

import (
	"fmt"

	"github.com/koi-im/koi/core/config"
)

// clusterWarnings names, in a cluster, the chat services whose persistent
// rooms would live in one node's memory: a room moves to another node
// when its node dies, and without a muc plugin it comes back empty.
func clusterWarnings(cfg *config.Config) config.Errors {
	if !cfg.Cluster.On() || !cfg.MUC.Enabled {
		return nil
	}
	var out config.Errors
	for _, h := range cfg.Hosts {
		if h.MUCDomain != "" && h.MUC == "" {
			out = append(out, config.Problem{Key: fmt.Sprintf("host %q.muc", h.Name), Msg: fmt.Sprintf(
				"in a cluster each room of %s lives on one node and moves when that node dies; without a muc plugin its persistent rooms are kept in that node's memory and lost with it", h.MUCDomain)})
		}
	}
	return out
}
