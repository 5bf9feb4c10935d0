package config

import (
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// minOutboxMaxSize keeps cluster.outbox_max_size above what a busy live
// node leaves unacknowledged between two acknowledgements (20 ms).
const minOutboxMaxSize = 1 << 20

// defaultOutboxMaxSize is cluster.outbox_max_size unset: the NATS
// server's default max_pending, as cluster.DefaultOutboxMax.
const defaultOutboxMaxSize = 64 << 20

// cluster reads the cluster block; without nats_url the node is alone.
func (d *decoder) cluster(v any) Cluster {
	b := d.block([]string{"cluster"}, v)
	lease := b.duration("lease", 10*time.Second, true)
	url, _ := b.str("nats_url")
	if url == "" {
		return Cluster{} // off: the other keys mean nothing
	}
	c := Cluster{Lease: lease, Name: b.nonEmpty("name", "koi"), OutboxMaxSize: b.integer("outbox_max_size", defaultOutboxMaxSize, true)}
	if c.OutboxMaxSize < minOutboxMaxSize {
		d.problem(b.at("outbox_max_size"), "at least %d bytes (1 MiB), got %d", int64(minOutboxMaxSize), c.OutboxMaxSize)
		c.OutboxMaxSize = defaultOutboxMaxSize
	}
	if !validNodeName(c.Name) {
		d.problem(b.at("name"), "want letters, digits, - and _ only (at most 64), got %s", quote(c.Name))
		c.Name = "koi"
	}
	for _, u := range strings.Split(url, ",") {
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			d.problem(b.at("nats_url"), "want nats://host:port (or tls://), comma-separated for several servers, got %s", quote(u))
			return c
		}
	}
	c.NATSURL = url
	node, _ := b.str("node")
	if node == "" {
		h, err := os.Hostname()
		if err != nil {
			d.problem(b.at("node"), "no node name given and the host name is unknown: %v", err)
			return c
		}
		node = h
	}
	if !validNodeName(node) {
		d.problem(b.at("node"), "want letters, digits, - and _ only (at most 64), got %s", quote(node))
		return c
	}
	c.Node = node
	if c.Lease < time.Second {
		d.problem(b.at("lease"), "at least 1s, got %v", c.Lease)
		c.Lease = 10 * time.Second
	}
	return c
}

// clusterBackends refuses, in a cluster, backends that live on one node:
// every node must see the same accounts, rosters and archives.
func (d *decoder) clusterBackends(c *Config) {
	if !c.Cluster.On() {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(c.Plugins)) {
		p := c.Plugins[name]
		if drv, _ := p.Config["driver"].(string); drv == "sqlite" {
			d.problem([]string{"plugin", name, "config", "driver"},
				"a cluster's nodes share their backends, and SQLite is a file of one node: use postgres or mysql (cluster.nats_url is set)")
		}
	}
	for _, h := range c.Hosts {
		if h.Upload != nil && h.Upload.Store.Type == "dir" {
			d.problem([]string{"host", h.Name, "upload", "store", "type"},
				"a cluster's nodes must serve the same files, and a directory is one node's: use an s3 store (cluster.nats_url is set)")
		}
	}
}

func validNodeName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
